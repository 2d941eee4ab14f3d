/**
 * No session event is lost when the process dies between its commit and its publish
 * (docs/events.md): child processes on the compiled library, the Firestore emulator and the Pub/Sub
 * emulator SIGKILL themselves right after the commit of an outbox record and before its publish
 * (the relay's test-only `beforePublish` option, see eventCrashChild.js): after a login, in the
 * middle of a kill, in the middle of a cleanup. A restarted process then relays what was left, and
 * every event arrives on the topic, exactly once after de-duplication by its id.
 */
import { join } from 'node:path';
import type { Message, PubSub, Subscription } from '@google-cloud/pubsub';
import type { OutboxRecord, SessionEvent } from '../../lib/core/events';
import { datastoreStore, uniqueNamespace } from '../support/fixtures';
import { ensureBuilt } from '../support/functionsFramework';
import { pubsub, pullTopic, receive, uniqueName } from '../support/pubsub';
import { runCommand } from '../support/runCommand';
import { seed, stored } from '../support/seed';

const CHILD = join(__dirname, 'eventCrashChild.js');
const HOUR = 3600_000;

let client: PubSub;

beforeAll(() => {
  ensureBuilt();
  client = pubsub();
}, 180_000);

afterAll(async () => {
  await client?.close();
});

/** Runs one step of the scenario in a child; its orphaned record when it crashed as asked. */
async function step(name: string, crashAt: number, namespace: string, topic: string): Promise<OutboxRecord | null> {
  const run = await runCommand(process.execPath, [CHILD, name, String(crashAt), namespace, topic], process.env);
  const lines = run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{"orphaned"') || l.startsWith('{"done"'))
    .map((l) => JSON.parse(l) as { orphaned?: OutboxRecord; done?: string; pending?: number });
  if (crashAt > 0) {
    // Killed by its own SIGKILL: no exit code, and it never reached its end.
    expect({ code: run.code, finished: lines.some((l) => l.done) }).toEqual({ code: null, finished: false });
    const orphaned = lines.find((l) => l.orphaned)?.orphaned;
    if (!orphaned) throw new Error(`step ${name} did not crash where asked:\n${run.stdout}\n${run.stderr}`);
    return orphaned;
  }
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  expect(lines.find((l) => l.done)).toEqual({ done: name, pending: 0 });
  return null;
}

/** Pulls until `count` distinct event ids arrived (then a short while more, to see duplicates). */
const collect = (from: Subscription, count: number): Promise<Message[]> =>
  receive(from, count, { timeoutMs: 60_000, countedAs: (m) => m.attributes.eventId ?? '', settleMs: 1000 });

test('killed right after the commit, before the publish: after a restart every event arrives, once per id', async () => {
  const namespace = uniqueNamespace('events');
  const topicName = uniqueName('session-events');
  const { subscription } = await pullTopic(client, topicName);
  const store = datastoreStore(namespace);
  // For the cleanup: 25 sessions of 25 users that expired an hour ago (three commits of 10).
  const now = Date.now();
  await seed(
    store,
    Array.from({ length: 25 }, (_, i) => [`old-${i}`, stored({ user: `user-${i}`, createdAt: now - 3 * HOUR, expiresAt: now - HOUR })]),
  );

  const orphaned = [
    await step('login', 1, namespace, topicName), // created + login
    await step('login-then-kill', 2, namespace, topicName), // its login published; the kill's commit orphaned
    await step('cleanup', 1, namespace, topicName), // the first 10 expired, orphaned; 15 not yet deleted
  ] as OutboxRecord[];
  expect(orphaned.map((r) => r.events.map((e) => e.type))).toEqual([['created', 'login'], ['ended', 'ended'], Array(10).fill('expired')]);
  // Each orphaned record's change was committed: the outbox holds exactly them now.
  const pending = await store.pendingOutbox(Date.now() + 1, 100);
  expect(new Set(pending.map((r) => r.id))).toEqual(new Set(orphaned.map((r) => r.id)));
  expect((await store.findKeys({ kind: 'expired', before: now }, 100)).keys).toHaveLength(15);

  // The restart: a cleanup run relays what was left and removes the other 15 expired sessions.
  await step('cleanup', 0, namespace, topicName);

  // 2 + (2 + 2) + (10 + 15) distinct events.
  const messages = await collect(subscription, 31);
  const received = new Map<string, SessionEvent>();
  for (const m of messages) {
    const event = JSON.parse(m.data.toString('utf8')) as SessionEvent;
    expect(m.attributes).toEqual({ eventId: event.id, type: event.type, ...(event.reason ? { reason: event.reason } : {}) });
    received.set(event.id, event);
  }
  expect(received.size).toBe(31);
  for (const event of orphaned.flatMap((r) => r.events)) expect(received.get(event.id)).toEqual(event);
  const byType = (type: string) => [...received.values()].filter((e) => e.type === type);
  expect(byType('ended').map((e) => [e.user, e.reason])).toEqual([
    ['alice', 'kill'],
    ['alice', 'kill'],
  ]);
  expect(new Set(byType('expired').map((e) => e.user))).toEqual(new Set(Array.from({ length: 25 }, (_, i) => `user-${i}`)));
  // The two logins' handles are the two sessions the kill ended.
  expect(new Set(byType('login').map((e) => e.device))).toEqual(new Set(byType('ended').map((e) => e.device)));
  expect(await store.pendingOutbox(Date.now() + 1, 100)).toEqual([]);
  await client.topic(topicName).delete();
}, 180_000);
