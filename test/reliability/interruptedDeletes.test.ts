/**
 * Deletions interrupted half-way, end to end: the compiled functions under the real
 * functions-framework (child processes), reaching the shared Firestore emulator through a TCP relay
 * of this file (so the store can be cut off, and slowed down enough that "half-way" is reliably
 * reached, without stopping the shared emulator). Kills arrive through a Pub/Sub emulator push
 * subscription, as in production.
 *
 * test/killSessionByUser.test.ts already covers a store that is down before the kill starts; here
 * the store goes away after some batches were deleted, and the cleanup process is SIGKILLed mid-run.
 */
import type { PubSub, Topic } from '@google-cloud/pubsub';
import { freePort } from '../../scripts/emulators';
import { expiredSelector, killSelector } from '../../lib/jobs/batchDelete';
import type { StoredSession } from '../../lib/store/sessionStore';
import { datastoreStore, uniqueNamespace } from '../support/fixtures';
import { ensureBuilt, type FunctionProcess, type LogLine, startFunction } from '../support/functionsFramework';
import { pubsub, pushTopic, uniqueName } from '../support/pubsub';
import { existing, keyOf, matching, seed, stored } from '../support/seed';
import { Relay, until } from './support';

const HOUR = 3600_000;
const MINUTE = 60_000;

let client: PubSub;
const processes: FunctionProcess[] = [];
const relays: Relay[] = [];

beforeAll(() => {
  ensureBuilt();
  client = pubsub();
}, 180_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await Promise.all(relays.map((r) => r.close()));
  await client?.close();
}, 60_000);

async function relayToSharedEmulator(delayMs: number): Promise<Relay> {
  const [host, port] = process.env.DATASTORE_EMULATOR_HOST!.split(':');
  const relay = new Relay(await freePort(), { host: host, port: Number(port) }, delayMs);
  relays.push(relay);
  await relay.open();
  return relay;
}

const linesOf = (fn: FunctionProcess, message: string, messageId?: string): LogLine[] =>
  fn.logs().filter((l) => l.message === message && (messageId === undefined || l.messageId === messageId));

test('the store goes away in the middle of a kill: the function throws, Pub/Sub redelivers, and after recovery exactly the matching sessions are gone', async () => {
  const relay = await relayToSharedEmulator(15);
  const namespace = uniqueNamespace('midkill');
  const topicName = uniqueName('midkill');
  const port = await freePort();
  const fn = await startFunction(
    'killSessionByUser',
    'cloudevent',
    {
      DATASTORE_EMULATOR_HOST: `127.0.0.1:${relay.port}`,
      SESSION_NAMESPACE: namespace,
      SESSION_KILL_TOPIC: topicName,
      SESSION_STORE_TIMEOUT_MS: '3000',
      SESSION_DELETE_BATCH_SIZE: '10',
      SESSION_DELETE_PARALLELISM: '1',
    },
    port,
  );
  processes.push(fn);
  const topic: Topic = await pushTopic(client, topicName, port);
  const store = datastoreStore(namespace);
  const now = Date.now();
  const issuedAt = new Date(now - MINUTE);
  const rows: Array<[string, StoredSession]> = [
    ...Array.from({ length: 400 }, (_, i): [string, StoredSession] => [
      `victim-${i}`,
      stored({ user: 'victim', createdAt: now - HOUR - i }),
    ]),
    // Opened after the kill was issued: must survive.
    ...Array.from({ length: 10 }, (_, i): [string, StoredSession] => [
      `victim-late-${i}`,
      stored({ user: 'victim', createdAt: now - 30_000 + i }),
    ]),
    ...Array.from({ length: 20 }, (_, i): [string, StoredSession] => [
      `bystander-${i}`,
      stored({ user: 'bystander', createdAt: now - HOUR }),
    ]),
    ...Array.from({ length: 20 }, (_, i): [string, StoredSession] => [`guest-${i}`, stored({ user: null, createdAt: now - HOUR })]),
  ];
  await seed(store, rows);
  const targets = rows.filter(([l]) => /^victim-\d+$/.test(l)).map(([l]) => keyOf(l));
  const others = rows.filter(([l]) => !/^victim-\d+$/.test(l)).map(([l]) => keyOf(l));

  const id = await topic.publishMessage({ data: Buffer.from(JSON.stringify({ user: 'victim', issuedAt: issuedAt.toISOString() })) });
  // Cut the store off once a few batches are committed.
  await until(`three kill batches\n${fn.output().slice(-2000)}`, () => linesOf(fn, 'kill progress', id).length >= 3, 60_000, 10);
  const failuresBefore = linesOf(fn, 'kill message failed; Pub/Sub will redeliver it', id).length;
  await relay.close();
  await until(
    'a delivery that failed after the cut',
    () => linesOf(fn, 'kill message failed; Pub/Sub will redeliver it', id).length > failuresBefore,
    90_000,
  );
  // Half-way for real: some sessions are gone, most are not, and none of the others was touched.
  const left = (await existing(store, targets)).length;
  expect(left).toBeGreaterThan(0);
  expect(left).toBeLessThan(targets.length);
  expect(linesOf(fn, 'kill finished', id)).toEqual([]);

  relay.delayMs = 0;
  await relay.open();
  await until(
    `the redelivered kill finished\n${fn.output().slice(-2000)}`,
    () => linesOf(fn, 'kill finished', id).length > 0,
    180_000,
    200,
  );
  expect(linesOf(fn, 'kill finished', id)).toEqual([
    expect.objectContaining({ done: true, deleted: left, issuedAt: issuedAt.toISOString() }),
  ]);
  expect(await existing(store, targets)).toEqual([]);
  expect((await existing(store, others)).sort()).toEqual([...others].sort());
  expect(await matching(store, killSelector('victim', issuedAt.getTime()))).toEqual([]);
  expect(linesOf(fn, 'kill message failed; Pub/Sub will redeliver it', id)[failuresBefore]).toMatchObject({
    severity: 'WARNING',
    error: 'store_unavailable',
  });
}, 300_000);

test('the cleanup process is SIGKILLed mid-run: the next run deletes exactly the expired sessions that are left, live ones untouched', async () => {
  const relay = await relayToSharedEmulator(15);
  const namespace = uniqueNamespace('killedcleanup');
  const env = {
    DATASTORE_EMULATOR_HOST: `127.0.0.1:${relay.port}`,
    SESSION_NAMESPACE: namespace,
    SESSION_KILL_TOPIC: uniqueName('killedcleanup'),
    SESSION_DELETE_BATCH_SIZE: '10',
    SESSION_DELETE_PARALLELISM: '2',
  };
  const store = datastoreStore(namespace);
  const now = Date.now();
  const rows: Array<[string, StoredSession]> = [
    ...Array.from({ length: 600 }, (_, i): [string, StoredSession] => [
      `expired-${i}`,
      stored({ createdAt: now - 5 * HOUR, expiresAt: now - 2 * HOUR - i }),
    ]),
    // Within the 5-minute grace, and live: the cleanup must keep both.
    ...Array.from({ length: 15 }, (_, i): [string, StoredSession] => [
      `grace-${i}`,
      stored({ createdAt: now - 2 * HOUR, expiresAt: now - MINUTE - i }),
    ]),
    ...Array.from({ length: 15 }, (_, i): [string, StoredSession] => [
      `live-${i}`,
      stored({ createdAt: now - HOUR, expiresAt: now + HOUR + i }),
    ]),
  ];
  await seed(store, rows);
  const expired = rows.filter(([l]) => l.startsWith('expired-')).map(([l]) => keyOf(l));
  const kept = rows.filter(([l]) => !l.startsWith('expired-')).map(([l]) => keyOf(l));

  const first = await startFunction('startClearSessions', 'http', env);
  processes.push(first);
  const answer = fetch(first.url, { method: 'POST', signal: AbortSignal.timeout(120_000) }).then(
    (r) => `answered ${r.status}`,
    () => 'no answer',
  );
  await until(`three cleanup batches\n${first.output().slice(-2000)}`, () => linesOf(first, 'cleanup progress').length >= 3, 60_000, 10);
  process.kill(-first.pid, 'SIGKILL');
  expect(await answer).toBe('no answer');
  await until('the killed process is gone', () => {
    try {
      process.kill(first.pid, 0);
      return false;
    } catch {
      return true;
    }
  });
  expect(linesOf(first, 'cleanup finished')).toEqual([]);
  const left = (await existing(store, expired)).length;
  expect(left).toBeGreaterThan(0);
  expect(left).toBeLessThan(expired.length);
  expect((await existing(store, kept)).length).toBe(kept.length);

  relay.delayMs = 0;
  const second = await startFunction('startClearSessions', 'http', env);
  processes.push(second);
  const res = await fetch(second.url, { method: 'POST', signal: AbortSignal.timeout(120_000) });
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ deleted: left, done: true, continued: false });
  expect(await existing(store, expired)).toEqual([]);
  expect((await existing(store, kept)).sort()).toEqual([...kept].sort());
  expect(await matching(store, expiredSelector(Date.now(), 300))).toEqual([]);
}, 300_000);
