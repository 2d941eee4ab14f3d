/**
 * The SessionStore contract suite (`viur-session-functions/testing`): the cases MemorySessionStore and
 * DatastoreSessionStore pass, for anyone writing a store for another database to run in their own
 * test runner. Plain `node:assert/strict`, no test framework: a case is a name and an async function
 * that throws an AssertionError when the store breaks the contract.
 *
 * Equality of records and heads is checked the way the repository's own tests always did (jest's
 * `toEqual`): own enumerable properties recursively, a property whose value is undefined counts as
 * absent, and prototypes are not compared (a store may hand back `data` as a plain object even though
 * the session library builds it without a prototype).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { deviceHandle } from '../core/devices';
import type { OutboxRecord } from '../core/events';
import { emptyData, type SessionData } from '../core/json';
import { GUEST_USER } from '../core/limits';
import type { SessionHead, SessionSelector, SessionStore, StoredSession } from './sessionStore';

/** One case of the contract: `run` makes its own store and throws when that store fails the case. */
export interface StoreContractCase {
  name: string;
  run: () => Promise<void>;
}

/** The part of a test runner runStoreContract uses; jest, vitest and node:test all offer it. */
export interface TestRegistrar {
  describe(name: string, body: () => void): unknown;
  test(name: string, fn: () => Promise<void>): unknown;
}

const T0 = Date.UTC(2026, 0, 1);
/** More pages than any case can need (8 records, pages of 3): a cursor that never ends fails, it does not hang. */
const MAX_PAGES = 50;

/**
 * A complete stored session at a fixed time (`createdAt` = `lastSeen` = 2026-01-01T00:00:00Z, alive
 * for an hour), the one the contract suite writes: seed your own store's tests with it.
 *
 * @example
 * await store.update(null, () => ({ writes: { put: [{ key: 'k', session: sampleSession({ user: 'u' }) }], delete: [] }, result: undefined }));
 */
export function sampleSession(overrides: Partial<StoredSession> = {}): StoredSession {
  return {
    data: Object.assign(emptyData(), { a: 1 }),
    user: null,
    lastSeen: T0,
    createdAt: T0,
    expiresAt: T0 + 3600_000,
    staticKeyDigest: 'ab'.repeat(32),
    securityKeyDigests: ['cd'.repeat(32)],
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64) contract',
    ...overrides,
  };
}

const put = (key: string, session: StoredSession) => ({ writes: { put: [{ key, session }], delete: [] }, result: undefined });

/** A copy with jest's `toEqual` view of a value: plain objects without undefined properties, arrays without holes. */
function comparable(value: unknown): unknown {
  if (Array.isArray(value)) return Array.from(value, comparable);
  if (value === null || typeof value !== 'object' || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = comparable(v);
  return out;
}

function assertEqual(actual: unknown, expected: unknown, message?: string): void {
  assert.deepStrictEqual(comparable(actual), comparable(expected), message);
}

/** Rejects with an error whose message contains `text` (jest's `rejects.toThrow(text)`). */
async function assertRejectsWith(promise: Promise<unknown>, text: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    const matches = err instanceof Error && err.message.includes(text);
    assert.ok(matches, `expected an error whose message contains ${JSON.stringify(text)}, got ${String(err)}`);
    return true;
  });
}

/** Every key the selector matches, read in pages of `limit` following the cursor, sorted. */
async function all(store: SessionStore, selector: SessionSelector, limit = 3): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    assert.ok(++pages <= MAX_PAGES, `findKeys still returned a cursor after ${MAX_PAGES} pages of ${limit}: is the cursor ignored?`);
    const page = await store.findKeys(selector, limit, cursor);
    assert.ok(page.keys.length <= limit, `findKeys returned ${page.keys.length} keys, more than the limit of ${limit}`);
    keys.push(...page.keys);
    cursor = page.cursor;
  } while (cursor);
  return keys.sort();
}

type Body = (store: SessionStore) => Promise<void>;

/** An outbox record of one event, written at `createdAt`. */
function outboxOf(id: string, createdAt: number, user: string | null = 'user-1'): OutboxRecord {
  return {
    id,
    createdAt,
    events: [{ id: `${id}.0`, type: 'ended', reason: 'kill', user, device: deviceHandle(id), time: new Date(createdAt).toISOString() }],
  };
}

/** The store's outbox methods; the session events (docs/events.md) need them, so the contract does. */
function outbox(store: SessionStore): Required<Pick<SessionStore, 'pendingOutbox' | 'deleteOutbox'>> {
  assert.ok(
    typeof store.pendingOutbox === 'function' && typeof store.deleteOutbox === 'function',
    'the store has no outbox (pendingOutbox, deleteOutbox): session events need one',
  );
  return { pendingOutbox: (before, limit) => store.pendingOutbox!(before, limit), deleteOutbox: (ids) => store.deleteOutbox!(ids) };
}

const CASES: Array<[string, Body]> = [
  [
    'get of an absent key is null',
    async (store) => {
      assert.equal(await store.get('0'.repeat(64)), null);
    },
  ],
  [
    'a record round-trips exactly',
    async (store) => {
      const data = Object.assign(emptyData(), {
        nested: { a: [1, 2.5, -3, null, true, false, 'x'], b: { c: { d: 'deep' } } },
        arrays: [[1, [2, [3]]], [], [{}]],
        unicode: 'grüße 🌍 \u0000 \u2028',
        big: 2 ** 53 + 2,
        tiny: 5e-324,
        empty: {},
        'dotted.key[0]%2E*': 'odd key',
        constructor: 'not special',
      }) as SessionData;
      const r = sampleSession({ data, user: 'user-1', securityKeyDigests: ['11'.repeat(32), '22'.repeat(32)] });
      await store.update(null, () => put('k1', r));
      const back = await store.get('k1');
      assertEqual(back, r);
      // Key order too: a store that re-sorts keys would change what the session hands back.
      assert.equal(JSON.stringify(back!.data), JSON.stringify(r.data));
    },
  ],
  [
    'a 500 KB string nested in a value saves (data is excluded from indexes at every depth)',
    async (store) => {
      const big = 'x'.repeat(500_000);
      const r = sampleSession({ data: Object.assign(emptyData(), { outer: { inner: [{ big }] } }) });
      await store.update(null, () => put('big', r));
      assert.equal(((await store.get('big'))!.data.outer as { inner: Array<{ big: string }> }).inner[0]!.big.length, 500_000);
    },
  ],
  [
    'update reads the current record and commits puts and deletes together',
    async (store) => {
      await store.update(null, () => put('old', sampleSession()));
      const seen = await store.update('old', (current) => ({
        writes: { put: [{ key: 'new', session: sampleSession({ user: 'u' }) }], delete: ['old'] },
        result: current?.data.a,
      }));
      assert.equal(seen, 1);
      assert.equal(await store.get('old'), null);
      assert.equal((await store.get('new'))?.user, 'u');
    },
  ],
  [
    'update with no writes changes nothing; a throwing decide writes nothing',
    async (store) => {
      await store.update(null, () => put('k', sampleSession()));
      assert.equal(await store.update('k', () => ({ writes: null, result: 7 })), 7);
      await assertRejectsWith(
        store.update('k', () => {
          throw new Error('boom');
        }),
        'boom',
      );
      assertEqual(await store.get('k'), sampleSession());
    },
  ],
  [
    'update of an absent key sees null',
    async (store) => {
      assert.equal(await store.update('missing', (current) => ({ writes: null, result: current })), null);
    },
  ],
  [
    'inserting a new session never overwrites an existing one',
    async (store) => {
      await store.update(null, () => put('dup', sampleSession()));
      await assert.rejects(store.update(null, () => put('dup', sampleSession({ user: 'intruder' }))));
      assert.equal((await store.get('dup'))?.user, null);
    },
  ],
  [
    'findKeys selects expired sessions, pages with a cursor, and never returns a live one',
    async (store) => {
      for (let i = 0; i < 7; i++) await store.update(null, () => put(`exp${i}`, sampleSession({ expiresAt: T0 + i * 1000 })));
      await store.update(null, () => put('live', sampleSession({ expiresAt: T0 + 10_000 })));
      assert.deepEqual(await all(store, { kind: 'expired', before: T0 + 7000 }), ['exp0', 'exp1', 'exp2', 'exp3', 'exp4', 'exp5', 'exp6']);
      assert.deepEqual(await all(store, { kind: 'expired', before: T0 + 3000 }), ['exp0', 'exp1', 'exp2']);
    },
  ],
  [
    'findKeys selects by user and creation time; __guest__ means no user, null means everyone',
    async (store) => {
      await store.update(null, () => put('a-old', sampleSession({ user: 'a', createdAt: T0 })));
      await store.update(null, () => put('a-new', sampleSession({ user: 'a', createdAt: T0 + 5000 })));
      await store.update(null, () => put('b', sampleSession({ user: 'b', createdAt: T0 })));
      await store.update(null, () => put('g', sampleSession({ user: null, createdAt: T0 })));
      assert.deepEqual(await all(store, { kind: 'user', user: 'a', createdAtOrBefore: T0 + 1000 }), ['a-old']);
      assert.deepEqual(await all(store, { kind: 'user', user: 'a', createdAtOrBefore: T0 + 5000 }), ['a-new', 'a-old']);
      assert.deepEqual(await all(store, { kind: 'user', user: '__guest__', createdAtOrBefore: T0 + 5000 }), ['g']);
      assert.deepEqual(await all(store, { kind: 'user', user: null, createdAtOrBefore: T0 + 1000 }), ['a-old', 'b', 'g']);
    },
  ],
  [
    "listUserSessions pages through one user's sessions expiring after a time, latest expiry first, heads only",
    async (store) => {
      const mine = ['m1', 'm2', 'm3', 'm4', 'm5'];
      const headOf = (i: number) => ({
        user: 'me',
        lastSeen: T0 + i,
        createdAt: T0 - i,
        expiresAt: T0 + (i % 2 === 0 ? i + 1 : 5 - i) * 1000,
        userAgent: i === 0 ? null : `ua-${i}`,
      });
      for (const [i, k] of mine.entries()) await store.update(null, () => put(k, sampleSession(headOf(i))));
      await store.update(null, () => put('ended', sampleSession({ user: 'me', endedAt: T0 + 7 })));
      // Past the time asked for (at it, and before it): never listed.
      await store.update(null, () => put('expired', sampleSession({ user: 'me', expiresAt: T0 })));
      await store.update(null, () => put('long-expired', sampleSession({ user: 'me', expiresAt: T0 - 86_400_000 })));
      await store.update(null, () => put('other', sampleSession({ user: 'someone-else' })));
      await store.update(null, () => put('guest', sampleSession({ user: null })));
      const seen: Array<{ key: string; head: SessionHead }> = [];
      let cursor: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await store.listUserSessions('me', T0, 2, cursor);
        assert.ok(page.sessions.length <= 2, `listUserSessions returned ${page.sessions.length} sessions, more than the limit of 2`);
        seen.push(...page.sessions);
        cursor = page.cursor;
        if (!cursor) break;
      }
      assert.equal(cursor, undefined);
      const expiries = seen.map((s) => s.head.expiresAt);
      assert.deepEqual(
        expiries,
        [...expiries].sort((a, b) => b - a),
        'latest expiresAt first, across pages',
      );
      // A tombstone within its expiry is listed with its endedAt, so that liveness can rule it out.
      const ended = seen.find((s) => s.key === 'ended');
      assert.ok(ended, 'the tombstone "ended" is listed');
      const userAgent = 'Mozilla/5.0 (X11; Linux x86_64) contract';
      assertEqual(ended.head, { user: 'me', lastSeen: T0, createdAt: T0, expiresAt: T0 + 3600_000, endedAt: T0 + 7, userAgent });
      seen.splice(seen.indexOf(ended), 1);
      assert.deepEqual(seen.map((s) => s.key).sort(), mine);
      for (const { key, head } of seen) {
        // Exactly the head: no data, no key digests.
        assertEqual(head, headOf(mine.indexOf(key)), key);
      }
      const later = await store.listUserSessions('me', T0 + 3000, 10);
      assert.deepEqual(later.sessions.map((s) => s.key).sort(), ['ended', 'm2', 'm5']);
      assertEqual((await store.listUserSessions('nobody', T0, 10)).sessions, []);
    },
  ],
  [
    "findUserSession finds a user's session by its device handle, head only; another user's, an expired or an absent one is null",
    async (store) => {
      const userAgent = 'Mozilla/5.0 (X11; Linux x86_64) contract';
      await store.update(null, () => put('a1', sampleSession({ user: 'a', lastSeen: T0 + 5, expiresAt: T0 + 1000 })));
      await store.update(null, () => put('a-expired', sampleSession({ user: 'a', expiresAt: T0 })));
      await store.update(null, () => put('b1', sampleSession({ user: 'b' })));
      assertEqual(await store.findUserSession('a', deviceHandle('a1'), T0), {
        key: 'a1',
        head: { user: 'a', lastSeen: T0 + 5, createdAt: T0, expiresAt: T0 + 1000, userAgent },
      });
      assert.equal(await store.findUserSession('a', deviceHandle('a1'), T0 + 1000), null, 'expiresAt must lie after the time');
      assert.equal(await store.findUserSession('a', deviceHandle('a-expired'), T0), null);
      assert.equal(await store.findUserSession('a', deviceHandle('b1'), T0), null, "another user's session");
      assert.notEqual(await store.findUserSession('b', deviceHandle('b1'), T0), null);
      assert.equal(await store.findUserSession('a', deviceHandle('absent'), T0), null);
      // Follows writes: a session moved to a new key (login, logout) and its tombstone; a deleted one.
      await store.update('a1', (current) => ({
        writes: {
          put: [
            { key: 'a2', session: current! },
            { key: 'a1', session: { ...current!, endedAt: T0 + 6 } },
          ],
          delete: [],
        },
        result: undefined,
      }));
      assert.equal((await store.findUserSession('a', deviceHandle('a2'), T0))?.key, 'a2');
      assert.equal((await store.findUserSession('a', deviceHandle('a1'), T0))?.head.endedAt, T0 + 6);
      await store.endSessions(['a1', 'a2']);
      assert.equal(await store.findUserSession('a', deviceHandle('a1'), T0), null);
      assert.equal(await store.findUserSession('a', deviceHandle('a2'), T0), null);
    },
  ],
  [
    'deleteMany deletes, ignores absent keys, and refuses more than 500 keys',
    async (store) => {
      await store.update(null, () => put('d1', sampleSession()));
      await store.update(null, () => put('d2', sampleSession()));
      await store.deleteMany(['d1', 'absent']);
      assert.equal(await store.get('d1'), null);
      assert.notEqual(await store.get('d2'), null);
      await assert.rejects(store.deleteMany(Array.from({ length: 501 }, (_, i) => `k${i}`)), RangeError);
      // endSessions: the same, for requests.
      await store.update(null, () => put('e1', sampleSession()));
      await store.endSessions(['e1', 'absent']);
      assert.equal(await store.get('e1'), null);
      assert.notEqual(await store.get('d2'), null);
      await assert.rejects(store.endSessions(Array.from({ length: 501 }, (_, i) => `k${i}`)), RangeError);
    },
  ],
  [
    'an outbox record is stored in the commit of an update, listed oldest first until deleted',
    async (store) => {
      const { pendingOutbox, deleteOutbox } = outbox(store);
      const late = outboxOf('rec-late', T0 + 2000);
      const early = outboxOf('rec-early', T0 + 1000, null);
      await store.update(null, () => ({
        writes: { put: [{ key: 'o1', session: sampleSession() }], delete: [], outbox: late },
        result: undefined,
      }));
      await store.update('o1', (current) => ({
        writes: { put: [{ key: 'o1', session: { ...current!, lastSeen: T0 + 1 } }], delete: [], outbox: early },
        result: undefined,
      }));
      assertEqual(await pendingOutbox(T0 + 5000, 10), [early, late]);
      assertEqual(await pendingOutbox(T0 + 5000, 1), [early]);
      // Records written at or after `before` are left to the request that wrote them.
      assertEqual(await pendingOutbox(T0 + 2000, 10), [early]);
      await deleteOutbox(['rec-early', 'absent']);
      assertEqual(await pendingOutbox(T0 + 5000, 10), [late]);
      await deleteOutbox([late.id]);
      assertEqual(await pendingOutbox(T0 + 5000, 10), []);
    },
  ],
  [
    'an update whose decide throws or writes nothing stores no outbox record',
    async (store) => {
      const { pendingOutbox } = outbox(store);
      await store.update(null, () => put('o2', sampleSession()));
      await assert.rejects(
        store.update('o2', () => {
          throw new Error('refused');
        }),
        /refused/,
      );
      await store.update('o2', () => ({ writes: null, result: undefined }));
      assertEqual(await pendingOutbox(T0 + 3600_000, 10), []);
    },
  ],
  [
    'deleteMany and endSessions store their outbox record in the same commit; 500 keys and a record are refused whole',
    async (store) => {
      const { pendingOutbox } = outbox(store);
      for (const k of ['x1', 'x2', 'x3']) await store.update(null, () => put(k, sampleSession()));
      await store.deleteMany(['x1', 'absent'], outboxOf('del', T0));
      await store.endSessions(['x2'], outboxOf('end', T0 + 1));
      assert.equal(await store.get('x1'), null);
      assert.equal(await store.get('x2'), null);
      assertEqual(await pendingOutbox(T0 + 10, 10), [outboxOf('del', T0), outboxOf('end', T0 + 1)]);
      const tooMany = ['x3', ...Array.from({ length: 499 }, (_, i) => `k${i}`)];
      await assert.rejects(store.deleteMany(tooMany, outboxOf('big', T0 + 2)), RangeError);
      await assert.rejects(store.endSessions(tooMany, outboxOf('big', T0 + 2)), RangeError);
      assert.notEqual(await store.get('x3'), null);
      assert.equal((await pendingOutbox(T0 + 10, 10)).length, 2);
    },
  ],
  [
    'findKeys finds expired sessions whatever their keys start with, each once, across pages',
    async (store) => {
      const expired: string[] = [];
      // Storage keys are SHA-256 hex digests; a store may shard by their first character.
      for (let i = 0; i < 48; i++) {
        const key = createHash('sha256').update(`session-${i}`).digest('hex');
        const gone = i % 3 !== 0;
        await store.update(null, () => put(key, sampleSession({ expiresAt: gone ? T0 + i : T0 + 10_000 })));
        if (gone) expired.push(key);
      }
      for (const key of ['Zed', '_x', '~tilde']) {
        await store.update(null, () => put(key, sampleSession({ expiresAt: T0 })));
        expired.push(key);
      }
      assert.deepEqual(await all(store, { kind: 'expired', before: T0 + 1000 }, 5), expired.sort());
      assert.deepEqual(await all(store, { kind: 'expired', before: T0 + 1000 }, 500), expired.sort());
    },
  ],
  [
    'findKeys withUsers gives each key its stored user (guests as GUEST_USER), page by page',
    async (store) => {
      await store.update(null, () => put('w1', sampleSession({ user: 'alice', expiresAt: T0 + 1 })));
      await store.update(null, () => put('w2', sampleSession({ expiresAt: T0 + 2 })));
      await store.update(null, () => put('w3', sampleSession({ user: 'bob', expiresAt: T0 + 3 })));
      const seen: Record<string, string> = {};
      let cursor: string | undefined;
      let pages = 0;
      do {
        assert.ok(++pages <= MAX_PAGES, 'findKeys withUsers never stopped returning a cursor');
        const page = await store.findKeys({ kind: 'expired', before: T0 + 10 }, 2, cursor, { withUsers: true });
        assert.equal(page.users?.length, page.keys.length, 'one user per key');
        page.keys.forEach((k, i) => (seen[k] = page.users![i]!));
        cursor = page.cursor;
      } while (cursor);
      assertEqual(seen, { w1: 'alice', w2: GUEST_USER, w3: 'bob' });
      const bobs = await store.findKeys({ kind: 'user', user: 'bob', createdAtOrBefore: T0 }, 10, undefined, { withUsers: true });
      assertEqual(bobs, { keys: ['w3'], users: ['bob'] });
    },
  ],
];

/**
 * The contract's cases, each running on a store of its own from `makeStore`. Each call must give an
 * empty store (a fresh instance, or a fresh namespace or table of a shared database): the cases use
 * fixed keys and count what they find.
 */
export function storeContract(makeStore: () => SessionStore | Promise<SessionStore>): StoreContractCase[] {
  return CASES.map(([name, body]) => ({ name, run: async () => body(await makeStore()) }));
}

/**
 * Registers the contract as `describe('store contract: <name>')` with one `test` per case, in any
 * runner that offers describe/test (jest, vitest, node:test).
 *
 * @example jest (or vitest, with `import { describe, test } from 'vitest'`)
 * ```ts
 * import { runStoreContract } from 'viur-session-functions/testing';
 * import { PostgresSessionStore } from 'my-postgres-session-store';
 *
 * // Each case needs an empty store: freshSchema() stands for your way of making one (a schema per call).
 * runStoreContract({ describe, test }, 'PostgresSessionStore', () => new PostgresSessionStore({ schema: freshSchema() }));
 * ```
 *
 * @example node:test (`node --test`)
 * ```ts
 * import { describe, test } from 'node:test';
 * import { runStoreContract } from 'viur-session-functions/testing';
 * import { PostgresSessionStore } from 'my-postgres-session-store';
 *
 * runStoreContract({ describe, test }, 'PostgresSessionStore', async () => PostgresSessionStore.connect({ schema: freshSchema() }));
 * ```
 */
export function runStoreContract(runner: TestRegistrar, name: string, makeStore: () => SessionStore | Promise<SessionStore>): void {
  const cases = storeContract(makeStore);
  runner.describe(`store contract: ${name}`, () => {
    for (const c of cases) runner.test(c.name, c.run);
  });
}
