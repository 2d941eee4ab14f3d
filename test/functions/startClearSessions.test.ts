/**
 * startClearSessions through functions-framework's test server (the real module that registers the
 * entry points), on the Firestore emulator, with an injected clock so budgets are deterministic.
 * Continuations go to the Pub/Sub emulator and are then fed to killSessionByUser.
 */
import { getTestServer } from '@google-cloud/functions-framework/testing';
import type { PubSub } from '@google-cloud/pubsub';
import request from 'supertest';
import '../../functions/index';
import { expiredSelector } from '../../lib/jobs/batchDelete';
import { StoreUnavailableError } from '../../lib/core/errors';
import { closePublishers } from '../../lib/jobs/killPublisher';
import { setLogSink } from '../../lib/setup/log';
import { createRuntime, setRuntime } from '../../lib/setup/runtime';
import type { SessionStore } from '../../lib/store/sessionStore';
import { datastoreStore, FakeClock, testConfig, uniqueNamespace } from '../support/fixtures';
import { pubsub, pullTopic, receive, uniqueName } from '../support/pubsub';
import { existing, keyOf, matching, ObservedStore, seed, stored } from '../support/seed';

const T0 = Date.UTC(2026, 0, 1, 3, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

let client: PubSub;
let logs: Array<Record<string, unknown>> = [];

beforeAll(() => {
  client = pubsub();
  setLogSink((line) => logs.push(JSON.parse(line) as Record<string, unknown>));
});

afterAll(async () => {
  setLogSink(null);
  setRuntime(undefined);
  await closePublishers();
  await client.close();
});

interface Setup {
  inner: SessionStore;
  store: ObservedStore;
  clock: FakeClock;
  expired: string[];
  kept: string[];
  topicName: string;
}

/** `n` sessions expired long ago, 3 within the 5-minute grace, 3 live; the runtime the functions use. */
async function setup(n: number, env: Record<string, string> = {}): Promise<Setup> {
  logs = [];
  const inner = datastoreStore(uniqueNamespace('cleanup'));
  const store = new ObservedStore(inner);
  const clock = new FakeClock(T0);
  const topicName = env.SESSION_KILL_TOPIC ?? uniqueName('cleanup');
  const rows: Array<[string, ReturnType<typeof stored>]> = [
    ...Array.from({ length: n }, (_, i): [string, ReturnType<typeof stored>] => [
      `exp-${i}`,
      stored({ createdAt: T0 - 5 * HOUR, expiresAt: T0 - HOUR - i }),
    ]),
    ...[1, 2, 4].map((m): [string, ReturnType<typeof stored>] => [
      `grace-${m}`,
      stored({ createdAt: T0 - 2 * HOUR, expiresAt: T0 - m * MINUTE }),
    ]),
    ...[1, 2, 3].map((m): [string, ReturnType<typeof stored>] => [
      `live-${m}`,
      stored({ createdAt: T0 - HOUR, expiresAt: T0 + m * MINUTE }),
    ]),
  ];
  await seed(inner, rows);
  setRuntime(createRuntime(testConfig({ SESSION_KILL_TOPIC: topicName, ...env }), { store, clock }));
  return {
    inner,
    store,
    clock,
    topicName,
    expired: rows.slice(0, n).map(([l]) => keyOf(l)),
    kept: rows.slice(n).map(([l]) => keyOf(l)),
  };
}

const server = () => getTestServer('startClearSessions');
const sorted = (keys: string[]) => [...keys].sort();

test('deletes the sessions expired beyond the grace, keeps live and within-grace ones, and reports', async () => {
  const s = await setup(1100);
  const res = await request(server()).post('/').expect(200);
  expect(res.headers['content-type']).toMatch(/application\/json/);
  expect(res.body).toEqual({
    deleted: 1100,
    batches: 3,
    done: true,
    elapsedMs: 0,
    expiredBefore: new Date(T0 - 5 * MINUTE).toISOString(),
    continued: false,
  });
  expect(Math.max(...s.store.deleteSizes)).toBeLessThanOrEqual(500);
  expect(sorted(await existing(s.inner, [...s.expired, ...s.kept]))).toEqual(sorted(s.kept));
  // Progress is logged per commit, and no line carries a session key.
  const progress = logs.filter((l) => l.message === 'cleanup progress');
  expect(progress.map((l) => l.batches)).toEqual([1, 2, 3]);
  const text = JSON.stringify(logs);
  expect(s.expired.concat(s.kept).some((k) => text.includes(k))).toBe(false);
}, 60_000);

test('the body is optional and ignored; any method but POST is 405 with a JSON error', async () => {
  await setup(2);
  await request(server())
    .post('/')
    .set('content-type', 'application/json')
    .send('{"before": "2100-01-01T00:00:00Z"}')
    .expect(200, {
      deleted: 2,
      batches: 1,
      done: true,
      elapsedMs: 0,
      expiredBefore: new Date(T0 - 5 * MINUTE).toISOString(),
      continued: false,
    });
  for (const method of ['get', 'put', 'delete'] as const) {
    const res = await request(server())[method]('/').expect(405);
    expect(res.headers.allow).toBe('POST');
    expect(res.body).toEqual({ error: { code: 'method_not_allowed', message: 'use POST' } });
  }
});

test('a tiny budget ends the run cleanly and continues through a cleanup message that the kill function finishes', async () => {
  const s = await setup(40, { SESSION_CLEANUP_BUDGET_SECONDS: '1', SESSION_DELETE_BATCH_SIZE: '5', SESSION_DELETE_PARALLELISM: '1' });
  const { subscription } = await pullTopic(client, s.topicName);
  // Each query costs 400 ms of the fake clock: the 1 s budget allows three queries, two of them used.
  s.store.beforeFind = () => s.clock.advance(400);
  const res = await request(server()).post('/').expect(200);
  expect(res.body).toMatchObject({ deleted: 10, batches: 2, done: false, elapsedMs: 1200, continued: true });
  expect(await matching(s.inner, expiredSelector(T0, 5 * 60))).toHaveLength(30);

  const [message] = await receive(subscription, 1);
  expect(JSON.parse(message.data.toString())).toEqual({ cleanup: { continuation: 1 } });

  // The kill function picks the backlog up at once (its own budget, 240 s by default, fits the rest).
  const ce = await request(getTestServer('killSessionByUser'))
    .post('/')
    .set({
      'content-type': 'application/json',
      'ce-id': message.id,
      'ce-specversion': '1.0',
      'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
      'ce-source': `//pubsub.googleapis.com/projects/session-test/topics/${s.topicName}`,
    })
    .send({ message: { data: message.data.toString('base64'), messageId: message.id, publishTime: message.publishTime.toISOString() } });
  expect(ce.status).toBeLessThan(300);
  expect(logs.find((l) => l.message === 'cleanup finished' && l.messageId === message.id)).toMatchObject({ deleted: 30, done: true });
  expect(sorted(await existing(s.inner, [...s.expired, ...s.kept]))).toEqual(sorted(s.kept));
}, 60_000);

test('a store failure that outlasts the retries answers 503 with a JSON error; a re-run deletes exactly what is left', async () => {
  const s = await setup(300, { SESSION_DELETE_BATCH_SIZE: '50', SESSION_DELETE_PARALLELISM: '2' });
  s.store.beforeDelete = (call) => {
    if (call >= 3) throw new StoreUnavailableError();
  };
  const failed = await request(server()).post('/').expect(503);
  expect(failed.body).toEqual({ error: { code: 'store_unavailable', message: expect.any(String) } });
  const left = await matching(s.inner, expiredSelector(T0, 5 * 60));
  expect(left.length).toBeGreaterThan(0);
  expect(left.length).toBeLessThan(300);

  s.store.beforeDelete = () => {};
  const rerun = await request(server()).post('/').expect(200);
  expect(rerun.body).toMatchObject({ deleted: left.length, done: true, continued: false });
  expect(sorted(await existing(s.inner, [...s.expired, ...s.kept]))).toEqual(sorted(s.kept));
}, 60_000);

test('a re-run after a run cut short by its budget deletes exactly the rest', async () => {
  const s = await setup(60, { SESSION_CLEANUP_BUDGET_SECONDS: '1', SESSION_DELETE_BATCH_SIZE: '10', SESSION_DELETE_PARALLELISM: '2' });
  await pullTopic(client, s.topicName);
  s.store.beforeFind = () => s.clock.advance(600);
  const first = await request(server()).post('/').expect(200);
  expect(first.body).toMatchObject({ done: false, continued: true });
  expect(first.body.deleted).toBeLessThan(60);
  s.store.beforeFind = () => {};
  const second = await request(server()).post('/').expect(200);
  expect(second.body).toMatchObject({ deleted: 60 - first.body.deleted, done: true });
  expect(sorted(await existing(s.inner, [...s.expired, ...s.kept]))).toEqual(sorted(s.kept));
}, 60_000);

test('when the continuation cannot be published the answer is 503, so the scheduler retries', async () => {
  // No such topic on the emulator: the publish fails with NOT_FOUND.
  const s = await setup(20, {
    SESSION_CLEANUP_BUDGET_SECONDS: '1',
    SESSION_DELETE_BATCH_SIZE: '5',
    SESSION_DELETE_PARALLELISM: '1',
    SESSION_KILL_TOPIC: uniqueName('missing'),
  });
  s.store.beforeFind = () => s.clock.advance(2000);
  const res = await request(server()).post('/').expect(503);
  expect(res.body.error.code).toBe('continuation_unavailable');
  expect(logs.some((l) => l.severity === 'ERROR' && l.message === 'could not publish the cleanup continuation')).toBe(true);
}, 60_000);
