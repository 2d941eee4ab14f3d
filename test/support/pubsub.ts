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

/**
 * Receives `count` messages (acknowledging them) or fails after `timeoutMs`. A fresh Subscription
 * object each time: a closed one does not reopen its stream.
 */
export async function receive(from: Subscription, count: number, timeoutMs = 30_000): Promise<Message[]> {
  const subscription = from.pubsub.subscription(from.name);
  const messages: Message[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${messages.length} of ${count} messages`)), timeoutMs);
      subscription.on('message', (m: Message) => {
        m.ack();
        messages.push(m);
        if (messages.length >= count) {
          clearTimeout(timer);
          resolve();
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
