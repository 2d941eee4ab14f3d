/**
 * killSessionByUser end to end: Pub/Sub emulator topic → push subscription → the compiled function
 * under the real functions-framework (a child process) → Firestore emulator in Datastore mode.
 * Nothing of Google's is replaced; sessions are seeded and checked through DatastoreSessionStore.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PubSub, Topic } from '@google-cloud/pubsub';
import { freePort } from '../../scripts/emulators';
import { createLocalAdmin } from '../../scripts/localAdmin';
import { derivedDigestKey, userDigest } from '../../lib/setup/log';
import { MAX_USER_BYTES, MAX_USERS_PER_MESSAGE } from '../../lib/core/limits';
import { ADMIN_EMAIL, AUDIENCE } from '../support/api';
import { expiredSelector, killSelector } from '../../lib/jobs/batchDelete';
import type { DatastoreSessionStore } from '../../lib/store/datastoreStore';
import { datastoreStore, uniqueNamespace } from '../support/fixtures';
import { Relay } from '../support/relay';
import { ensureBuilt, type FunctionProcess, type LogLine, startFunction } from '../support/functionsFramework';
import { pubsub, pushTopic, uniqueName } from '../support/pubsub';
import { eventually, existing, keyOf, matching, seed, stored } from '../support/seed';

const HOUR = 3600_000;
const PROJECT = 'session-test';

let client: PubSub;
const processes: FunctionProcess[] = [];

interface KillSetup {
  fn: FunctionProcess;
  topic: Topic;
  topicName: string;
  store: DatastoreSessionStore;
}

async function killFunction(env: Record<string, string> = {}): Promise<KillSetup> {
  const namespace = uniqueNamespace('kill');
  const topicName = uniqueName('kill');
  const port = await freePort();
  const fn = await startFunction(
    'killSessionByUser',
    'cloudevent',
    { SESSION_NAMESPACE: namespace, SESSION_KILL_TOPIC: topicName, ...env },
    port,
  );
  processes.push(fn);
  const topic = await pushTopic(client, topicName, port);
  return { fn, topic, topicName, store: datastoreStore(namespace) };
}

function publish(topic: Topic, data: unknown): Promise<string> {
  return topic.publishMessage({ data: Buffer.isBuffer(data) ? data : Buffer.from(JSON.stringify(data)) });
}

/** How the kill lines name a user by default: the digest under the key derived from the project id (no raw ids). */
const digestOf = (user: string) => userDigest(user, derivedDigestKey(PROJECT));

const lines = (fn: FunctionProcess, message: string, messageId?: string): LogLine[] =>
  fn.logs().filter((l) => l.message === message && (messageId === undefined || l.messageId === messageId));

/** Follows a kill (or cleanup) through its continuations; resolves with every 'started' and 'finished' line of the chain. */
async function chain(
  fn: FunctionProcess,
  rootId: string,
  finished = 'kill finished',
  timeoutMs = 90_000,
): Promise<{ ids: string[]; finished: LogLine }> {
  const ids = [rootId];
  let done: LogLine | undefined;
  await eventually(
    `${finished} for the chain of ${rootId}\n${fn.output().slice(-3000)}`,
    () => {
      for (let i = 0; i < 10_000; i++) {
        const id = ids[ids.length - 1];
        done = lines(fn, finished, id)[0];
        if (done) return true;
        const next = lines(fn, 'work continues in a follow-up message', id)[0];
        if (!next) return false;
        ids.push(String(next.continuationMessageId));
      }
      return false;
    },
    timeoutMs,
  );
  return { ids, finished: done! };
}

beforeAll(() => {
  ensureBuilt();
  client = pubsub();
}, 180_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await client?.close();
});

describe('killSessionByUser through a Pub/Sub push subscription', () => {
  let k: KillSetup;
  const now = Date.now();
  beforeAll(async () => {
    k = await killFunction();
  }, 60_000);

  test('{"user": id} deletes that user’s sessions and nothing else', async () => {
    await seed(k.store, [
      ['a-1', stored({ user: 'a', createdAt: now - HOUR })],
      ['a-2', stored({ user: 'a', createdAt: now - 2 * HOUR })],
      ['b-1', stored({ user: 'b', createdAt: now - HOUR })],
      ['g-1', stored({ user: null, createdAt: now - HOUR })],
    ]);
    const id = await publish(k.topic, { user: 'a' });
    const { finished } = await chain(k.fn, id);
    expect(finished).toMatchObject({ deleted: 2, done: true, scope: 'user', userDigest: digestOf('a') });
    expect(finished).not.toHaveProperty('user');
    expect((await existing(k.store, ['a-1', 'a-2', 'b-1', 'g-1'].map(keyOf))).sort()).toEqual([keyOf('b-1'), keyOf('g-1')].sort());
  });

  test('{"user": "__guest__"} deletes the sessions without a user', async () => {
    await seed(k.store, [
      ['g-2', stored({ user: null, createdAt: now - HOUR })],
      ['g-3', stored({ user: null, createdAt: now - HOUR })],
      ['b-2', stored({ user: 'b', createdAt: now - HOUR })],
    ]);
    const id = await publish(k.topic, { user: '__guest__' });
    const { finished } = await chain(k.fn, id);
    expect(finished).toMatchObject({ scope: 'guests', done: true });
    expect(await existing(k.store, ['g-1', 'g-2', 'g-3'].map(keyOf))).toEqual([]);
    expect(await existing(k.store, ['b-1', 'b-2'].map(keyOf))).toHaveLength(2);
  });

  test('{"users": [...]} fans out into one unit of work per user', async () => {
    await seed(k.store, [
      ['c-1', stored({ user: 'c', createdAt: now - HOUR })],
      ['d-1', stored({ user: 'd', createdAt: now - HOUR })],
      ['d-2', stored({ user: 'd', createdAt: now - HOUR })],
      ['e-1', stored({ user: 'e', createdAt: now - HOUR })],
    ]);
    const id = await publish(k.topic, { users: ['c', 'd', 'c'] });
    await eventually(
      'both follow-ups finished',
      () => lines(k.fn, 'kill finished').filter((l) => l.userDigest === digestOf('c') || l.userDigest === digestOf('d')).length === 2,
    );
    expect(lines(k.fn, 'kill fanned out', id)).toEqual([expect.objectContaining({ users: 2, followUps: 2 })]);
    const followUps = lines(k.fn, 'kill finished').filter((l) => l.userDigest === digestOf('c') || l.userDigest === digestOf('d'));
    // Every follow-up carries the fan-out's cut-off, not its own later publish time.
    expect(new Set(followUps.map((l) => l.issuedAt)).size).toBe(1);
    expect(followUps.map((l) => l.messageId)).not.toContain(id);
    expect(await existing(k.store, ['c-1', 'd-1', 'd-2', 'e-1'].map(keyOf))).toEqual([keyOf('e-1')]);
  });

  test('issuedAt spares a session the user opened after the kill was issued; a future issuedAt is capped at the publish time', async () => {
    await seed(k.store, [
      ['f-old', stored({ user: 'f', createdAt: now - HOUR })],
      ['f-new', stored({ user: 'f', createdAt: now - 5 * 60_000 })],
      ['h-old', stored({ user: 'h', createdAt: now - HOUR })],
      ['h-future', stored({ user: 'h', createdAt: now + HOUR })],
    ]);
    const f = await publish(k.topic, { user: 'f', issuedAt: new Date(now - 10 * 60_000).toISOString() });
    const h = await publish(k.topic, { user: 'h', issuedAt: new Date(now + 2 * HOUR).toISOString() });
    await chain(k.fn, f);
    const { finished } = await chain(k.fn, h);
    expect(Date.parse(String(finished.issuedAt))).toBeLessThan(now + HOUR);
    expect((await existing(k.store, ['f-old', 'f-new', 'h-old', 'h-future'].map(keyOf))).sort()).toEqual(
      [keyOf('f-new'), keyOf('h-future')].sort(),
    );
  });

  test('a kill of 1,200 sessions crosses several commits of at most 500', async () => {
    await seed(
      k.store,
      Array.from({ length: 1200 }, (_, i) => [`big-${i}`, stored({ user: 'big', createdAt: now - HOUR - i })]),
    );
    const id = await publish(k.topic, { user: 'big' });
    const { finished } = await chain(k.fn, id);
    expect(finished).toMatchObject({ deleted: 1200, batches: 3, done: true });
    const progress = lines(k.fn, 'kill progress', id);
    expect(progress).toHaveLength(3);
    expect(await matching(k.store, killSelector('big', now + HOUR))).toEqual([]);
  }, 120_000);

  test('malformed messages are logged once with their message id, acknowledged, and change nothing', async () => {
    await seed(k.store, [
      ['m-1', stored({ user: 'm', createdAt: now - HOUR })],
      ['live-m', stored({ user: null, createdAt: now - HOUR, expiresAt: now + HOUR })],
      ['expired-m', stored({ user: null, createdAt: now - 3 * HOUR, expiresAt: now - 2 * HOUR })],
    ]);
    const bad: Array<[string, Buffer]> = [
      ['not JSON', Buffer.from('kill m please')],
      ['not UTF-8', Buffer.from([0xff, 0xfe, 0x7b])],
      ['an array', Buffer.from('["m"]')],
      ['a number as user', Buffer.from('{"user": 5}')],
      ['an unknown field', Buffer.from('{"user": "m", "force": true}')],
      ['a typo', Buffer.from('{"usr": "m"}')],
      ['an empty list', Buffer.from('{"users": []}')],
      ['a date that is not ISO 8601', Buffer.from('{"user": "m", "issuedAt": "yesterday"}')],
      ['a continuation without its cut-off', Buffer.from('{"user": "m", "continuation": 1}')],
      ['a cleanup that names its own cut-off', Buffer.from('{"cleanup": {"before": "2100-01-01T00:00:00Z"}}')],
    ];
    const ids = await Promise.all(bad.map(([, data]) => publish(k.topic, data)));
    await eventually('an error line for every malformed message', () =>
      ids.every((id) => lines(k.fn, 'malformed kill message acknowledged without action', id).length > 0),
    );
    // A well-formed message published afterwards is processed: the malformed ones were acknowledged, not stuck.
    const sentinel = await publish(k.topic, { user: 'sentinel' });
    await chain(k.fn, sentinel);
    for (const [i, id] of ids.entries()) {
      const errors = lines(k.fn, 'malformed kill message acknowledged without action', id);
      expect({ case: bad[i][0], errors: errors.length, severity: errors[0]?.severity }).toEqual({
        case: bad[i][0],
        errors: 1,
        severity: 'ERROR',
      });
      expect(fnLinesFor(k.fn, id).filter((l) => l.message !== 'malformed kill message acknowledged without action')).toEqual([]);
    }
    expect(await existing(k.store, ['m-1', 'live-m', 'expired-m'].map(keyOf))).toHaveLength(3);
  }, 120_000);

  test('{"cleanup": {}} runs a cleanup pass: expired sessions go, live and within-grace ones stay', async () => {
    await seed(k.store, [
      ['x-expired', stored({ createdAt: now - 3 * HOUR, expiresAt: now - HOUR })],
      ['x-grace', stored({ createdAt: now - 2 * HOUR, expiresAt: now - 60_000 })],
      ['x-live', stored({ createdAt: now - HOUR, expiresAt: now + HOUR })],
    ]);
    const id = await publish(k.topic, { cleanup: {} });
    const { finished } = await chain(k.fn, id, 'cleanup finished');
    expect(finished.done).toBe(true);
    expect(await matching(k.store, expiredSelector(Date.now(), 300))).toEqual([]);
    expect((await existing(k.store, ['x-expired', 'x-grace', 'x-live', 'expired-m'].map(keyOf))).sort()).toEqual(
      [keyOf('x-grace'), keyOf('x-live')].sort(),
    );
  });

  test('an Eventarc CloudEvent (binary mode) works the same; a malformed one is acknowledged', async () => {
    await seed(k.store, [['ev-1', stored({ user: 'ev', createdAt: now - HOUR })]]);
    const post = (id: string, data: unknown) =>
      fetch(k.fn.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'ce-id': id,
          'ce-specversion': '1.0',
          'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
          'ce-source': `//pubsub.googleapis.com/projects/${PROJECT}/topics/${k.topicName}`,
          'ce-time': new Date().toISOString(),
        },
        body: JSON.stringify({
          message: {
            data: Buffer.from(JSON.stringify(data)).toString('base64'),
            messageId: id,
            publishTime: new Date().toISOString(),
            attributes: {},
          },
          subscription: `projects/${PROJECT}/subscriptions/eventarc-test`,
        }),
      });
    expect((await post('eventarc-1', { user: 'ev' })).status).toBeLessThan(300);
    await eventually('the log of eventarc-1', () => lines(k.fn, 'kill finished', 'eventarc-1').length > 0);
    expect(lines(k.fn, 'kill finished', 'eventarc-1')).toEqual([expect.objectContaining({ deleted: 1, userDigest: digestOf('ev') })]);
    expect(await existing(k.store, [keyOf('ev-1')])).toEqual([]);
    expect((await post('eventarc-2', { user: 'ev', extra: 1 })).status).toBeLessThan(300);
    await eventually(
      'the log of eventarc-2',
      () => lines(k.fn, 'malformed kill message acknowledged without action', 'eventarc-2').length > 0,
    );
    expect(lines(k.fn, 'malformed kill message acknowledged without action', 'eventarc-2')).toHaveLength(1);
  });

  test('{"user": null} deletes every session created up to the publish time', async () => {
    await seed(k.store, [
      ['z-1', stored({ user: 'z', createdAt: now - HOUR })],
      ['z-guest', stored({ user: null, createdAt: now - HOUR })],
      ['z-later', stored({ user: 'z', createdAt: now + HOUR })],
    ]);
    const id = await publish(k.topic, { user: null });
    const { finished } = await chain(k.fn, id);
    expect(finished).toMatchObject({ scope: 'everyone', done: true });
    expect(await matching(k.store, killSelector(null, now + HOUR - 1))).toEqual([]);
    expect(await existing(k.store, [keyOf('z-later')])).toEqual([keyOf('z-later')]);
  });
});

function fnLinesFor(fn: FunctionProcess, messageId: string): LogLine[] {
  return fn.logs().filter((l) => l.messageId === messageId);
}

test('with a tiny budget, a kill of 1,200 sessions continues through several follow-up messages that keep its cut-off', async () => {
  const k = await killFunction({ SESSION_KILL_BUDGET_SECONDS: '1', SESSION_DELETE_BATCH_SIZE: '5', SESSION_DELETE_PARALLELISM: '1' });
  const now = Date.now();
  const issuedAt = new Date(now - 60_000).toISOString();
  await seed(k.store, [
    ...Array.from({ length: 1200 }, (_, i): [string, ReturnType<typeof stored>] => [
      `t-${i}`,
      stored({ user: 'tiny', createdAt: now - HOUR - i }),
    ]),
    ['t-late', stored({ user: 'tiny', createdAt: now - 30_000 })],
  ]);
  const id = await publish(k.topic, { user: 'tiny', issuedAt });
  const { ids, finished } = await chain(k.fn, id, 'kill finished', 240_000);
  expect(ids.length).toBeGreaterThanOrEqual(3);
  expect(finished.done).toBe(true);
  const started = ids.map((mid) => lines(k.fn, 'kill started', mid)[0]);
  expect(started.map((l) => l?.issuedAt)).toEqual(ids.map(() => issuedAt));
  expect(started.map((l) => l?.continuation)).toEqual(ids.map((_, i) => i));
  const deleted = ids.map((mid) => Number(lines(k.fn, mid === ids.at(-1) ? 'kill finished' : 'kill budget spent', mid)[0]?.deleted));
  expect(deleted.reduce((a, b) => a + b, 0)).toBe(1200);
  process.stdout.write(`tiny budget: ${ids.length} invocations deleted ${deleted.join(' + ')}\n`);
  expect(await matching(k.store, killSelector('tiny', now + HOUR))).toEqual([keyOf('t-late')]);
}, 300_000);

/**
 * A store outage, made real at the network level: the function reaches the Datastore emulator
 * through a TCP relay that refuses connections until the test opens it. (Restarting an emulator
 * would lose the seeded sessions, and seeding after the restart would race the redelivery.)
 */
test('a store failure is thrown (5xx), Pub/Sub redelivers, and the kill completes once the store is back', async () => {
  const [host, port] = process.env.DATASTORE_EMULATOR_HOST!.split(':');
  const relay = new Relay(await freePort(), { host: host, port: Number(port) });
  const k = await killFunction({ DATASTORE_EMULATOR_HOST: `127.0.0.1:${relay.port}`, SESSION_STORE_TIMEOUT_MS: '1000' });
  const now = Date.now();
  // Seeded directly in the emulator; the function sees the store only through the (closed) relay.
  await seed(k.store, [
    ['r-1', stored({ user: 'r', createdAt: now - HOUR })],
    ['r-2', stored({ user: 'r', createdAt: now - HOUR })],
    ['s-1', stored({ user: 's', createdAt: now - HOUR })],
  ]);
  try {
    // As Eventarc would deliver it: a failure is answered with a 5xx, which makes Pub/Sub retry.
    const direct = await fetch(k.fn.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'ce-id': 'outage-direct',
        'ce-specversion': '1.0',
        'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
        'ce-source': `//pubsub.googleapis.com/projects/${PROJECT}/topics/${k.topicName}`,
      },
      body: JSON.stringify({
        message: {
          data: Buffer.from('{"user":"r"}').toString('base64'),
          messageId: 'outage-direct',
          publishTime: new Date().toISOString(),
        },
      }),
    });
    expect(direct.status).toBeGreaterThanOrEqual(500);

    const id = await publish(k.topic, { user: 'r' });
    await eventually('a failed delivery', () => lines(k.fn, 'kill message failed; Pub/Sub will redeliver it', id).length >= 2);
    expect(await existing(k.store, ['r-1', 'r-2'].map(keyOf))).toHaveLength(2);

    await relay.open();
    const { finished } = await chain(k.fn, id, 'kill finished', 180_000);
    expect(finished).toMatchObject({ deleted: 2, done: true });
    expect(await existing(k.store, ['r-1', 'r-2', 's-1'].map(keyOf))).toEqual([keyOf('s-1')]);
    expect(lines(k.fn, 'kill message failed; Pub/Sub will redeliver it', id)[0]).toMatchObject({
      severity: 'WARNING',
      error: 'store_unavailable',
    });
  } finally {
    await relay.close();
  }
}, 240_000);

/**
 * Issue 26, finding 6: the API and the kill function share one body limit, but a push carries the
 * message base64-encoded in a JSON envelope (4/3 of it and more). The largest kill the API takes
 * (1,000 users, ids as long as its body limit allows) must reach the kill function, at a small
 * SESSION_MAX_DATA_BYTES and at the default. The kill function's own follow-ups go to a topic
 * nobody reads, so the 1,000-user fan-out costs nothing further.
 */
describe('every kill the API accepts is deliverable to the kill function (issue 26, finding 6)', () => {
  const admin = createLocalAdmin(mkdtempSync(join(tmpdir(), 'kill-size-admin-')), ADMIN_EMAIL);

  test.each([
    ['4096', { SESSION_MAX_DATA_BYTES: '4096' }],
    ['the default', {}],
  ])(
    'SESSION_MAX_DATA_BYTES=%s: the largest kill the API accepts is fanned out by the kill function',
    async (_name, limits) => {
      const sink = uniqueName('kill-sink');
      await client.createTopic(sink);
      const k = await killFunction({ ...limits, SESSION_STORE: 'memory', SESSION_KILL_TOPIC: sink });
      const api = await startFunction('sessionApi', 'http', {
        ...limits,
        SESSION_STORE: 'memory',
        SESSION_KILL_TOPIC: k.topicName,
        SESSION_ADMIN_JWKS_FILE: admin.jwksFile,
        SESSION_ADMIN_PRINCIPALS: ADMIN_EMAIL,
        SESSION_ADMIN_AUDIENCE: AUDIENCE,
      });
      processes.push(api);
      const body = (length: number) =>
        JSON.stringify({ users: Array.from({ length: MAX_USERS_PER_MESSAGE }, (_, i) => `${i}-`.padEnd(length, 'x')) });
      const kill = (length: number, token?: string) =>
        fetch(`${api.url}/sessions/kill`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: body(length),
        });
      // The longest ids whose body the API reads (401 without a token: nothing is published) rather than refusing it (413).
      let [low, high] = [5, MAX_USER_BYTES];
      while (low < high) {
        const mid = Math.ceil((low + high) / 2);
        const status = (await kill(mid)).status;
        expect([401, 413]).toContain(status);
        if (status === 401) low = mid;
        else high = mid - 1;
      }
      const accepted = await kill(low, admin.mint(AUDIENCE));
      expect(accepted.status).toBe(202);
      const { messageId } = (await accepted.json()) as { messageId: string };
      // What the push of that message looks like (Pub/Sub's envelope), posted directly: answered, not 413.
      const push = await fetch(`${k.fn.url}/projects/${PROJECT}/topics/${k.topicName}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          message: {
            data: Buffer.from(body(low)).toString('base64'),
            messageId: `direct-${messageId}`,
            publishTime: new Date().toISOString(),
          },
          subscription: `projects/${PROJECT}/subscriptions/${k.topicName}-push`,
        }),
      });
      expect(push.status).toBeLessThan(300);
      await eventually(
        `the kill function fanned out ${messageId} (${body(low).length} bytes of body)\n${k.fn.output().slice(-2000)}`,
        () => lines(k.fn, 'kill fanned out', messageId).length > 0,
        30_000,
      );
      expect(lines(k.fn, 'kill fanned out', messageId)).toEqual([expect.objectContaining({ users: MAX_USERS_PER_MESSAGE })]);
      // A kill whose message would be over MAX_MESSAGE_BYTES (ids of escaped characters; the body itself fits) is refused by the API.
      const escaped = JSON.stringify({ users: Array.from({ length: 351 }, (_, i) => `${i}`.padEnd(MAX_USER_BYTES, '\u0001')) });
      const tooLarge = await fetch(`${api.url}/sessions/kill`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.mint(AUDIENCE)}` },
        body: escaped,
      });
      expect([tooLarge.status, await tooLarge.json()]).toEqual([
        400,
        { error: { code: 'bad_request', message: 'message: larger than 1048576 bytes' } },
      ]);
    },
    120_000,
  );
});
