import { randomUUID } from 'node:crypto';
import type { PubSub, Topic } from '@google-cloud/pubsub';
import type { Config } from '../setup/config';
import { credentialsGate } from '../setup/credentials';
import { encodeKillMessage, type KillMessageData, type KillTarget, killMessageData } from './killMessage';
import { log } from '../setup/log';

/** Where kill messages go. */
export interface KillDestination {
  projectId: string;
  topic: string;
}

/**
 * Publishes kill messages. Called directly with a target, it publishes a kill (what the API and the
 * CLI do); `publish` also takes the internal continuation forms (see killMessage.ts). Both resolve
 * to the message id once the message is accepted, not when the kill is done.
 */
export interface KillPublisher {
  (target: KillTarget, options?: { issuedAt?: Date }): Promise<string>;
  /** The same as calling the publisher. */
  publishKill(target: KillTarget, options?: { issuedAt?: Date }): Promise<string>;
  /** Publishes any message form as it is (validated by the consumer only): the kill job's follow-ups. */
  publish(data: KillMessageData): Promise<string>;
  /** Flushes and releases the client (a CLI must call it to exit promptly). */
  close(): Promise<void>;
}

/**
 * How long one publish may take, retries included. The client's own default is ten minutes, far
 * beyond any function's budget; failing sooner lets Pub/Sub redeliver the message being processed.
 */
const PUBLISH_TIMEOUT_MS = 30_000;

/**
 * The Pub/Sub client library, an optional peer dependency of the package: the functions and
 * `session-kill` need it, a service that embeds the library only for publishKill/pubSubPublisher
 * (and the session events' publisher).
 *
 * @example
 * const { PubSub } = loadPubSub(); // throws a message naming the package when it is not installed
 */
export function loadPubSub(): typeof import('@google-cloud/pubsub') {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@google-cloud/pubsub') as typeof import('@google-cloud/pubsub');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !String((err as Error).message).includes('@google-cloud/pubsub'))
      throw err;
    throw new Error(
      'publishing a kill message to Pub/Sub needs the package @google-cloud/pubsub (an optional peer dependency): npm install @google-cloud/pubsub',
      { cause: err },
    );
  }
}

/**
 * A publisher on Cloud Pub/Sub. The client is required here, on first construction, not at module
 * load: the module that registers the functions imports this file, and loading the Pub/Sub client
 * (gRPC and protobufs) costs every cold start of the API, which never publishes on most requests.
 * PUBSUB_EMULATOR_HOST is honoured by the client itself. Keep the publisher for the life of the
 * process (publisherFor() does) and close() it at shutdown.
 *
 * @example
 * const publisher = pubSubPublisher({ projectId: 'my-project', topic: 'session-kill' });
 * const messageId = await publisher({ user: 'alice' }, { issuedAt: new Date() });
 * await publisher.close();
 */
export function pubSubPublisher(destination: KillDestination): KillPublisher {
  const client = lazyTopic(destination);
  return publisher(async (data: KillMessageData) => (await client.topic()).publishMessage({ data: encodeKillMessage(data) }), client.close);
}

/** A Pub/Sub topic whose client is made on first use (see pubSubPublisher for why), and its release. */
export interface LazyTopic {
  /** The topic, once the client has credentials: without them the client would crash the process (credentials.ts), so this rejects instead. */
  readonly topic: () => Promise<Topic>;
  /** Flushes and releases the client, if it was made. */
  readonly close: () => Promise<void>;
}

/**
 * The one way this package opens a topic to publish on: the kill publisher and the session events'
 * publisher share it, with the same publish timeout and credentials gate.
 *
 * @example
 * const events = lazyTopic({ projectId: 'my-project', topic: 'session-events' });
 * await (await events.topic()).publishMessage({ data: Buffer.from('{}') });
 * await events.close();
 */
export function lazyTopic(destination: { projectId: string; topic: string }): LazyTopic {
  let client: { pubsub: PubSub; topic: Topic; ready: () => Promise<void> } | undefined;
  return {
    topic: async () => {
      if (!client) {
        const { PubSub: Client } = loadPubSub();
        const pubsub = new Client({ projectId: destination.projectId });
        client = {
          pubsub,
          ready: credentialsGate(pubsub),
          topic: pubsub.topic(destination.topic, { gaxOpts: { timeout: PUBLISH_TIMEOUT_MS } }),
        };
      }
      const { ready, topic } = client;
      await ready();
      return topic;
    },
    close: async () => {
      if (!client) return;
      const { pubsub, topic } = client;
      client = undefined;
      await topic.flush();
      await pubsub.close();
    },
  };
}

const PUSH_ATTEMPTS = 5;
const PUSH_TIMEOUT_MS = 10 * 60_000;

/**
 * Local stand-in for Pub/Sub (`SESSION_KILL_PUSH_URL`, for `npm start` on the memory store): posts
 * the push request a Pub/Sub push subscription would send to `url`, which should end in
 * `/projects/P/topics/T` so that functions-framework turns it into a CloudEvent. Like Pub/Sub it
 * resolves once the message is accepted and delivers in the background: the receiving function
 * answers only when the kill is done, and a kill that publishes its own continuation must not wait
 * for it. A failed delivery (non-2xx, no answer) is retried a few times with backoff, as Pub/Sub
 * would; nothing survives a restart of this process, which is acceptable for local use only.
 *
 * @example
 * const url = 'http://localhost:8081/projects/local/topics/session-kill';
 * const publisher = pushPublisher({ projectId: 'local', topic: 'session-kill', url });
 * await publisher.publishKill({ user: 'alice' });
 * await publisher.close(); // waits for the delivery
 */
export function pushPublisher(destination: KillDestination & { url: string }): KillPublisher {
  const pending = new Set<Promise<void>>();
  const subscription = `projects/${destination.projectId}/subscriptions/${destination.topic}-local-push`;

  const deliver = async (body: string, messageId: string) => {
    for (let attempt = 1; attempt <= PUSH_ATTEMPTS; attempt++) {
      try {
        const res = await fetch(destination.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(PUSH_TIMEOUT_MS),
        });
        await res.arrayBuffer();
        if (res.ok) return;
        log('WARNING', 'local kill push was not acknowledged', { messageId, status: res.status, attempt });
      } catch (err) {
        log('WARNING', 'local kill push failed', { messageId, attempt, error: err instanceof Error ? err.message : String(err) });
      }
      if (attempt < PUSH_ATTEMPTS) await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
    log('ERROR', 'local kill push given up', { messageId, attempts: PUSH_ATTEMPTS });
  };

  const publish = async (data: KillMessageData) => {
    const messageId = `local-${randomUUID()}`;
    const body = JSON.stringify({
      message: { data: encodeKillMessage(data).toString('base64'), messageId, publishTime: new Date().toISOString(), attributes: {} },
      subscription,
    });
    const delivery = deliver(body, messageId).finally(() => pending.delete(delivery));
    pending.add(delivery);
    return messageId;
  };
  return publisher(publish, async () => {
    await Promise.all(pending);
  });
}

function publisher(publish: (data: KillMessageData) => Promise<string>, close: () => Promise<void>): KillPublisher {
  // Validation happens before anything is sent: the target is checked with the consumer's rules.
  const publishKill = async (target: KillTarget, options: { issuedAt?: Date } = {}) => publish(killMessageData(target, options.issuedAt));
  return Object.assign(publishKill, { publishKill, publish, close });
}

/**
 * One-shot publish of a kill (CLI, scripts): creates a client, publishes, closes it. Long-running
 * code uses publisherFor() instead, which keeps the client. Resolves with the message id once
 * Pub/Sub accepted the message (the kill itself runs later, in killSessionByUser); rejects with
 * MalformedKillMessageError for a target the consumer would refuse, before anything is sent.
 *
 * @example
 * const messageId = await publishKill({ user: 'alice' }, { projectId: 'my-project', topic: 'session-kill' });
 * await publishKill({ users: ['a', 'b'] }, { projectId: 'my-project', topic: 'session-kill', issuedAt: new Date('2026-01-01T12:00:00Z') });
 */
export async function publishKill(target: KillTarget, options: KillDestination & { issuedAt?: Date }): Promise<string> {
  const publisher = pubSubPublisher(options);
  try {
    return await publisher(target, { issuedAt: options.issuedAt });
  } finally {
    await publisher.close();
  }
}

const publishers = new Map<string, KillPublisher>();

/**
 * The publisher the configuration asks for, kept for the life of the process (a client per
 * invocation would reconnect every time): local push when SESSION_KILL_PUSH_URL is set, Pub/Sub
 * on SESSION_KILL_TOPIC otherwise. The same configuration always gets the same publisher.
 *
 * @example
 * const messageId = await publisherFor(runtime().config).publishKill({ user: 'alice' });
 */
export function publisherFor(config: Pick<Config, 'projectId' | 'killTopic' | 'killPushUrl'>): KillPublisher {
  const id = JSON.stringify([config.projectId, config.killTopic, config.killPushUrl ?? null]);
  let publisher = publishers.get(id);
  if (!publisher) {
    const destination = { projectId: config.projectId, topic: config.killTopic };
    publisher =
      config.killPushUrl === undefined ? pubSubPublisher(destination) : pushPublisher({ ...destination, url: config.killPushUrl });
    publishers.set(id, publisher);
  }
  return publisher;
}

/**
 * Closes every publisher publisherFor() made (tests, orderly shutdown); a later publisherFor()
 * makes a new one.
 *
 * @example
 * process.once('SIGTERM', () => void closePublishers());
 */
export async function closePublishers(): Promise<void> {
  const all = [...publishers.values()];
  publishers.clear();
  await Promise.all(all.map((p) => p.close()));
}
