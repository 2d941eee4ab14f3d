import { randomBytes } from 'node:crypto';
import { type Message, PubSub, type Subscription, type Topic } from '@google-cloud/pubsub';

/** A client on the Pub/Sub emulator (PUBSUB_EMULATOR_HOST, set by the global setup). */
export function pubsub(): PubSub {
  if (!process.env.PUBSUB_EMULATOR_HOST)
    throw new Error('PUBSUB_EMULATOR_HOST is not set: run the tests through jest (globalSetup starts the emulator)');
  return new PubSub({ projectId: process.env.GOOGLE_CLOUD_PROJECT });
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/**
 * A topic with a push subscription to `port`. The push path is /projects/P/topics/T: that is what
 * makes functions-framework convert the raw push request into a CloudEvent.
 */
export async function pushTopic(client: PubSub, topicName: string, port: number): Promise<Topic> {
  const [topic] = await client.createTopic(topicName);
  const project = process.env.GOOGLE_CLOUD_PROJECT;
  // Longer than any single invocation in the tests, so a slow run is not redelivered while it works.
  await topic.createSubscription(`${topicName}-push`, {
    pushConfig: { pushEndpoint: `http://127.0.0.1:${port}/projects/${project}/topics/${topicName}` },
    ackDeadlineSeconds: 120,
  });
  return topic;
}

export async function pullTopic(client: PubSub, topicName: string): Promise<{ topic: Topic; subscription: Subscription }> {
  const [topic] = await client.createTopic(topicName);
  const [subscription] = await topic.createSubscription(`${topicName}-pull`, { ackDeadlineSeconds: 60 });
  return { topic, subscription };
}

/** How receive() counts and when it stops. */
export interface ReceiveOptions {
  timeoutMs?: number;
  /** What a message counts as (default: itself): e.g. its event id, so that duplicates count once. */
  countedAs?: (m: Message) => unknown;
  /** How long to keep receiving once `count` is reached (default 0), to see what arrives late (duplicates). */
  settleMs?: number;
}

/**
 * Receives until `count` messages (acknowledging them), or `count` distinct `countedAs` values,
 * have arrived, or fails after `timeoutMs`. A fresh Subscription object each time: a closed one
 * does not reopen its stream.
 */
export async function receive(from: Subscription, count: number, options: number | ReceiveOptions = {}): Promise<Message[]> {
  const {
    timeoutMs = 30_000,
    countedAs = (m: Message) => m,
    settleMs = 0,
  } = typeof options === 'number' ? { timeoutMs: options } : options;
  const subscription = from.pubsub.subscription(from.name);
  const messages: Message[] = [];
  const counted = new Set<unknown>();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${counted.size} of ${count} messages`)), timeoutMs);
      subscription.on('message', (m: Message) => {
        m.ack();
        messages.push(m);
        counted.add(countedAs(m));
        if (counted.size >= count) {
          clearTimeout(timer);
          if (settleMs > 0) setTimeout(resolve, settleMs);
          else resolve();
        }
      });
      subscription.on('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } finally {
    subscription.removeAllListeners();
    await subscription.close();
  }
  return messages;
}
