import { Datastore, PropertyFilter, v1 } from '@google-cloud/datastore';
import { deviceHandle } from '../../../lib/core/devices';
import { DatastoreSessionStore } from '../../../lib/store/datastoreStore';
import { DataTooLargeError, StoreUnavailableError } from '../../../lib/core/errors';
import { emptyData, type SessionData } from '../../../lib/core/json';
import type { Decision, StoredSession } from '../../../lib/store/sessionStore';
import { freePort } from '../../../scripts/emulators';
import { countQueriedEntities, countRpcs, datastore, uniqueNamespace } from '../../support/fixtures';
import { legacyDatastore, legacyDatastoreStore } from '../../support/legacyDatastore';
import { Relay } from '../../support/relay';

/**
 * The Datastore store on the paths the contract suite does not reach: the production transaction
 * path (lookup-opened, on the legacy emulator), a commit that really aborts, every call's deadline
 * and the classification of errors (docs/testing.md).
 */

const T0 = Date.UTC(2026, 0, 1);
const KIND = 'viur-session';

function record(overrides: Partial<StoredSession> = {}): StoredSession {
  return {
    data: Object.assign(emptyData(), { n: 0 }),
    user: 'u1',
    lastSeen: T0,
    createdAt: T0,
    expiresAt: T0 + 3600_000,
    staticKeyDigest: 'ab'.repeat(32),
    securityKeyDigests: ['cd'.repeat(32)],
    userAgent: null,
    ...overrides,
  };
}

const put = (key: string, session: StoredSession): Decision<undefined> => ({
  writes: { put: [{ key, session }], delete: [] },
  result: undefined,
});

function hostPort(host: string): { host: string; port: number } {
  const [h, p] = host.split(':');
  return { host: h, port: Number(p) };
}

describe('production transaction path (legacy emulator, the lookup opens the transaction)', () => {
  const rpc = countRpcs();
  afterAll(() => rpc.restore());

  test('a change is one lookup and one commit, no separate beginTransaction', async () => {
    const store = legacyDatastoreStore();
    await store.update(null, () => put('k', record()));
    rpc.reset();
    await store.update('k', (current) => put('k', { ...current!, data: Object.assign(emptyData(), { n: 1 }) }));
    expect(rpc.counts).toEqual({ lookup: 1, commit: 1 });
    expect((await store.get('k'))!.data.n).toBe(1);
  });

  test('a read-only update releases its transaction: lookup and rollback, and a later write is not blocked', async () => {
    const store = legacyDatastoreStore();
    await store.update(null, () => put('k', record()));
    rpc.reset();
    expect(await store.update('k', (current) => ({ writes: null, result: current!.data.n }))).toBe(0);
    expect(rpc.counts).toEqual({ lookup: 1, rollback: 1 });
    await store.update('k', (current) => put('k', { ...current!, user: 'u2' }));
    expect((await store.get('k'))!.user).toBe('u2');
  });
});

describe('retry when a commit aborts (two instances with their own clients on one entity)', () => {
  /** A second instance's write landing between this update's read and its commit. */
  function contender(ns: string) {
    const other = legacyDatastoreStore(ns, legacyDatastore());
    let writes = 0;
    return {
      get writes() {
        return writes;
      },
      /** Starts the other instance's write now; the caller's commit is held back by `slow` until it landed. */
      write(): Promise<void> {
        writes++;
        return other.update('k', (current) =>
          put('k', { ...current!, data: Object.assign(emptyData(), { ...current!.data, other: writes }) }),
        );
      },
    };
  }

  /** This instance's client talks through a relay that delays every chunk, so the contender's write always lands first. */
  async function slowStore(ns: string, maxAttempts: number) {
    const legacy = hostPort(process.env.LEGACY_DATASTORE_EMULATOR_HOST!);
    const relay = new Relay(await freePort(), legacy, 0);
    await relay.open();
    const ds = new Datastore({ projectId: process.env.GOOGLE_CLOUD_PROJECT ?? 'session-test', apiEndpoint: `127.0.0.1:${relay.port}` });
    return { relay, store: legacyDatastoreStore(ns, ds, { maxAttempts }) };
  }

  test('an aborted commit is retried on fresh data: neither instance’s write is lost', async () => {
    const ns = uniqueNamespace('abort');
    await legacyDatastoreStore(ns).update(null, () => put('k', record()));
    const other = contender(ns);
    const { relay, store } = await slowStore(ns, 8);
    try {
      const seen: Array<number | undefined> = [];
      let landed: Promise<void> | undefined;
      relay.delayMs = 300;
      const result = await store.update('k', (current) => {
        seen.push(current!.data.other as number | undefined);
        if (seen.length === 1) landed = other.write();
        return {
          ...put('k', { ...current!, data: Object.assign(emptyData(), { ...current!.data, mine: seen.length }) }),
          result: seen.length,
        };
      });
      await landed;
      // First attempt read before the other write and aborted; the second read it and committed.
      expect(seen).toEqual([undefined, 1]);
      expect(result).toBe(2);
      expect({ ...(await legacyDatastoreStore(ns).get('k'))!.data }).toEqual({ n: 0, other: 1, mine: 2 });
    } finally {
      await relay.close();
    }
  });

  test('contention on every attempt gives up after maxAttempts with the abort, and writes nothing of its own', async () => {
    const ns = uniqueNamespace('abort');
    await legacyDatastoreStore(ns).update(null, () => put('k', record()));
    const other = contender(ns);
    const { relay, store } = await slowStore(ns, 3);
    try {
      const pending: Array<Promise<void>> = [];
      relay.delayMs = 300;
      const failure = await store
        .update('k', (current) => {
          pending.push(other.write());
          return put('k', { ...current!, data: Object.assign(emptyData(), { ...current!.data, mine: true }) });
        })
        .catch((err: unknown) => err);
      await Promise.all(pending);
      expect(other.writes).toBe(3);
      expect((failure as { code?: unknown }).code).toBe(10);
      expect(failure).not.toBeInstanceOf(StoreUnavailableError);
      expect({ ...(await legacyDatastoreStore(ns).get('k'))!.data }).toEqual({ n: 0, other: 3 });
    } finally {
      await relay.close();
    }
  });
});

describe('every Datastore call has a deadline: a store that never answers ends in StoreUnavailableError', () => {
  const TIMEOUT_MS = 300;
  let relay: Relay;

  /** A store whose client talks to `emulatorHost` through a relay the test can stall. */
  async function stallable(emulatorHost: string, separateBegin: boolean) {
    relay = new Relay(await freePort(), hostPort(emulatorHost), 0);
    await relay.open();
    const ds = new Datastore({ projectId: process.env.GOOGLE_CLOUD_PROJECT ?? 'session-test', apiEndpoint: `127.0.0.1:${relay.port}` });
    const namespace = uniqueNamespace('deadline');
    // One call through the relay first (with a generous deadline: a first call is slow), so the connection is up before it stalls.
    await new DatastoreSessionStore({ datastore: ds, kind: KIND, namespace, timeoutMs: 10_000, separateBegin }).update(null, () =>
      put('k', record()),
    );
    // The deletion engine's calls have their own (longer) deadline; here it is as short as the request one.
    return new DatastoreSessionStore({
      datastore: ds,
      kind: KIND,
      namespace,
      timeoutMs: TIMEOUT_MS,
      engineTimeoutMs: TIMEOUT_MS,
      separateBegin,
    });
  }
  const legacy = () => stallable(process.env.LEGACY_DATASTORE_EMULATOR_HOST!, false);
  const firestore = () => stallable(process.env.DATASTORE_EMULATOR_HOST!, true);
  const stall = () => {
    relay.stalled = true;
  };

  afterEach(async () => {
    await relay.close();
  });

  // Without its deadline a call waits for the client's default (60 s and more): the test times out.
  const limit = 15_000;

  test(
    'insert of a new session',
    async () => {
      const store = await legacy();
      stall();
      await expect(store.update(null, () => put('new', record()))).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );

  test(
    'plain lookup',
    async () => {
      const store = await legacy();
      stall();
      await expect(store.get('k')).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );

  test(
    'the lookup that opens the transaction',
    async () => {
      const store = await legacy();
      stall();
      await expect(store.update('k', () => ({ writes: null, result: 0 }))).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );

  test(
    'the separate beginTransaction (emulator path)',
    async () => {
      const store = await firestore();
      stall();
      await expect(store.update('k', () => ({ writes: null, result: 0 }))).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );

  test(
    'the lookup after a separate beginTransaction',
    async () => {
      const store = await firestore();
      // begin goes through; the stall starts with the lookup after it (seen at the client's RPC level, called through).
      let looked = false;
      const proto = v1.DatastoreClient.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
      const original = proto.lookup;
      proto.lookup = function (this: unknown, ...args: unknown[]) {
        looked = true;
        stall();
        return original.apply(this, args);
      };
      try {
        await expect(store.update('k', () => ({ writes: null, result: 0 }))).rejects.toBeInstanceOf(StoreUnavailableError);
        expect(looked).toBe(true);
      } finally {
        proto.lookup = original;
      }
    },
    limit,
  );

  test(
    'commit',
    async () => {
      const store = await legacy();
      await expect(
        store.update('k', (current) => {
          stall();
          return put('k', { ...current!, user: 'changed' });
        }),
      ).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );

  test(
    'rollback of a read-only transaction: the update still answers',
    async () => {
      const store = await legacy();
      const result = await store.update('k', () => {
        stall();
        return { writes: null, result: 'read' };
      });
      expect(result).toBe('read');
    },
    limit,
  );

  test(
    "listing of a user's sessions (the device routes)",
    async () => {
      const store = await legacy();
      stall();
      await expect(store.listUserSessions('u1', T0, 10)).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );

  test(
    'finding a session by its handle (the device routes)',
    async () => {
      const store = await legacy();
      stall();
      await expect(store.findUserSession('u1', deviceHandle('k'), T0)).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );

  test(
    'ending sessions for a request (the device routes, the cap): the request deadline',
    async () => {
      const store = await legacy();
      stall();
      await expect(store.endSessions(['k'])).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );

  test(
    'query of the deletion engine',
    async () => {
      const store = await legacy();
      stall();
      await expect(store.findKeys({ kind: 'expired', before: T0 + 7200_000 }, 10)).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );

  test(
    'batch delete',
    async () => {
      const store = await legacy();
      stall();
      await expect(store.deleteMany(['k'])).rejects.toBeInstanceOf(StoreUnavailableError);
    },
    limit,
  );
});

describe('error classification', () => {
  test('an insert collision is refused as such, not as an unavailable store (no 503)', async () => {
    for (const store of [
      legacyDatastoreStore(),
      new DatastoreSessionStore({
        datastore: datastore(),
        kind: KIND,
        namespace: uniqueNamespace('dup'),
        timeoutMs: 10_000,
        separateBegin: true,
      }),
    ]) {
      await store.update(null, () => put('dup', record()));
      const err = await store.update(null, () => put('dup', record({ user: 'intruder' }))).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(StoreUnavailableError);
      expect((err as { code?: unknown }).code).toBe(6); // ALREADY_EXISTS
      expect((await store.get('dup'))!.user).toBe('u1');
    }
  });

  test("an entity over Datastore's size limit is refused as too large (413), not as an unavailable store", async () => {
    // Reached only if SESSION_MAX_DATA_BYTES is set above what an entity can hold (1 MiB). The
    // Firestore emulator enforces the limit as production does; the legacy emulator stores the entity.
    const data = Object.assign(emptyData(), { big: 'x'.repeat(1_100_000) }) as SessionData;
    const store = new DatastoreSessionStore({
      datastore: datastore(),
      kind: KIND,
      namespace: uniqueNamespace('big'),
      timeoutMs: 10_000,
      separateBegin: true,
    });
    const err = await store.update(null, () => put('big', record({ data }))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataTooLargeError);
    expect(err).toMatchObject({ status: 413, code: 'too_large', message: 'the session is larger than the store accepts' });
    expect(await store.get('big')).toBeNull();
  });

  test('a store that is gone (connection refused) is unavailable', async () => {
    const ds = new Datastore({ projectId: 'session-test', apiEndpoint: `127.0.0.1:${await freePort()}` });
    const store = new DatastoreSessionStore({ datastore: ds, kind: KIND, timeoutMs: 500 });
    await expect(store.get('k')).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});

describe('batch delete bound', () => {
  test('a commit of exactly 500 keys is accepted and deletes them all; 501 are refused before any call', async () => {
    const store = new DatastoreSessionStore({
      datastore: datastore(),
      kind: KIND,
      namespace: uniqueNamespace('500'),
      timeoutMs: 60_000,
      separateBegin: true,
    });
    const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
    await store.update(null, () => ({ writes: { put: keys.map((key) => ({ key, session: record() })), delete: [] }, result: undefined }));
    await store.deleteMany(keys);
    expect((await store.findKeys({ kind: 'expired', before: T0 + 7200_000 }, 1000)).keys).toEqual([]);
    await expect(store.deleteMany([...keys, 'k500'])).rejects.toThrow(new RangeError('at most 500 keys per commit'));
  });
});

describe('index exclusions (docs/storage.md#properties): only user, createdAt, handle, expiry and userExpiry can be queried', () => {
  test.each([
    ['the legacy emulator', () => ({ ds: legacyDatastore(), separateBegin: false })],
    ['the Firestore emulator', () => ({ ds: datastore(), separateBegin: true })],
  ])('on %s', async (_name, make) => {
    const { ds, separateBegin } = make();
    const ns = uniqueNamespace('idx');
    const store = new DatastoreSessionStore({ datastore: ds, kind: KIND, namespace: ns, timeoutMs: 10_000, separateBegin });
    const r = record({ data: Object.assign(emptyData(), { a: 'x' }), userAgent: 'UA/1', endedAt: T0 });
    await store.update(null, () => put('new', r));
    // A transactional save takes the same exclusions as the insert.
    await store.update(null, () => put('tx', r));
    await store.update('tx', (current) => put('tx', { ...current! }));
    const count = async (property: string, value: unknown) =>
      (await ds.runQuery(ds.createQuery(ns, KIND).filter(new PropertyFilter(property, '=', value))))[0].length;
    expect(await count('user', 'u1')).toBe(2);
    expect(await count('createdAt', new Date(T0))).toBe(2);
    expect(await count('handle', deviceHandle('new'))).toBe(1);
    // The expiry, sharded by the key's first hex digit (a non-hex first character picks one by its code).
    const expiry = new Date(T0 + 3600_000).toISOString();
    expect(await count('expiry', `${'0123456789abcdef'['n'.charCodeAt(0) % 16]}:${expiry}`)).toBe(1);
    expect(await count('expiry', `${'0123456789abcdef'['t'.charCodeAt(0) % 16]}:${expiry}`)).toBe(1);
    // The user's expiry: the user id after its length; none for a guest.
    expect(await count('userExpiry', `2:u1:${expiry}`)).toBe(2);
    await store.update(null, () => put('guest', { ...r, user: null }));
    const [[guest]] = await ds.runQuery(ds.createQuery(ns, KIND).filter(new PropertyFilter('handle', '=', deviceHandle('guest'))));
    expect(guest).not.toHaveProperty('userExpiry');
    // Not expiresAt: every write moves it to a new maximum (docs/capacity.md).
    expect(await count('expiresAt', new Date(T0 + 3600_000))).toBe(0);
    expect(await count('lastseen', ds.double(T0 / 1000))).toBe(0);
    expect(await count('securityKeys', 'cd'.repeat(32))).toBe(0);
    expect(await count('staticSecurityKey', 'ab'.repeat(32))).toBe(0);
    expect(await count('data', '{"a":"x"}')).toBe(0);
    expect(await count('userAgent', 'UA/1')).toBe(0);
    expect(await count('endedAt', new Date(T0))).toBe(0);
  });
});

test("the listing's userExpiry ranges keep users apart: ids that start alike, hold ':' or ';', are not ASCII or 500 bytes long", async () => {
  const store = new DatastoreSessionStore({
    datastore: datastore(),
    kind: KIND,
    namespace: uniqueNamespace('users'),
    timeoutMs: 10_000,
    separateBegin: true,
  });
  const now = Date.now();
  const users = ['a', 'ab', 'a:', 'a:b', 'a;', '1:a', '10', 'ä', 'ä:', '😀', 'x'.repeat(500), 'x'.repeat(499), '__guest__x'];
  for (const [i, user] of users.entries()) {
    // Two live sessions and one expired one each.
    await store.update(null, () => put(`${i}-live-1`, record({ user, expiresAt: now + 3600_000 })));
    await store.update(null, () => put(`${i}-live-2`, record({ user, expiresAt: now + 7200_000 })));
    await store.update(null, () => put(`${i}-dead`, record({ user, expiresAt: now - 1 })));
  }
  await store.update(null, () => put('guest', record({ user: null, expiresAt: now + 3600_000 })));
  for (const [i, user] of users.entries()) {
    const { sessions } = await store.listUserSessions(user, now, 10);
    expect([user, sessions.map((x) => x.key)]).toEqual([user, [`${i}-live-2`, `${i}-live-1`]]);
  }
  expect((await store.listUserSessions('__guest__', now, 10)).sessions).toEqual([]);
});

describe('what the store reads back from entities it did not write in the current shape', () => {
  const ns = uniqueNamespace('shape');
  const store = () =>
    new DatastoreSessionStore({ datastore: datastore(), kind: KIND, namespace: ns, timeoutMs: 10_000, separateBegin: true });
  /** Writes an entity as an older version (or another tool) left it, straight through the client. */
  async function raw(name: string, data: Record<string, unknown>): Promise<void> {
    const ds = datastore();
    await ds.save({ key: ds.key({ namespace: ns, path: [KIND, name] }), data, excludeFromIndexes: ['data', 'data.*'] });
  }
  const base = {
    user: 'u1',
    lastseen: datastore().double(T0 / 1000),
    createdAt: new Date(T0),
    expiresAt: new Date(T0 + 3600_000),
    staticSecurityKey: 'ab'.repeat(32),
  };

  test('the older embedded shape: one JSON text per key, names percent-encoded; no userAgent, no securityKeys', async () => {
    await raw('old', { ...base, data: { 'a%2Eb': '1', 'c%25d%5B0%5D': '"x"', plain: '{"n":[1,2]}' } });
    expect(await store().get('old')).toEqual({
      data: { 'a.b': 1, 'c%d[0]': 'x', plain: { n: [1, 2] } },
      user: 'u1',
      lastSeen: T0,
      createdAt: T0,
      expiresAt: T0 + 3600_000,
      staticKeyDigest: 'ab'.repeat(32),
      securityKeyDigests: [],
      userAgent: null,
    });
  });

  test('a session written before handles were stored is found by its handle among the live sessions, within the listing bound; its next write stores the handle', async () => {
    const now = Date.now();
    const live = { ...base, user: 'old-timer', lastseen: datastore().double(now / 1000), createdAt: new Date(now) };
    await raw('legacy', { ...live, expiresAt: new Date(now + 7200_000), data: '{}', securityKeys: [], userAgent: 'Old/1' });
    await raw('legacy-expired', { ...live, expiresAt: new Date(now - 1000), data: '{}', securityKeys: [] });
    const s = store();
    const rpcs = countRpcs();
    try {
      expect(await s.findUserSession('old-timer', deviceHandle('legacy'), now)).toEqual({
        key: 'legacy',
        head: { user: 'old-timer', lastSeen: now, createdAt: now, expiresAt: now + 7200_000, userAgent: 'Old/1' },
      });
      // The handle's query found nothing; the first page of the user's live sessions had it (its two
      // queries, sent together: sessions written before `userExpiry` existed, and the others).
      expect(rpcs.counts).toEqual({ runQuery: 3 });
      rpcs.reset();
      expect(await s.findUserSession('old-timer', deviceHandle('legacy-expired'), now)).toBeNull();
      expect(await s.findUserSession('someone-else', deviceHandle('legacy'), now)).toBeNull();
      expect(rpcs.counts).toEqual({ runQuery: 6 });
      rpcs.reset();
      await s.update('legacy', (current) => put('legacy', current!));
      rpcs.reset();
      expect((await s.findUserSession('old-timer', deviceHandle('legacy'), now))?.key).toBe('legacy');
      expect(rpcs.counts).toEqual({ runQuery: 1 });
    } finally {
      rpcs.restore();
    }
  });

  test('a session written before `expiry` existed (expiresAt indexed, no expiry) is cleaned up, listed and ended; its next write moves it to the new shape', async () => {
    // A namespace of its own: the cleanup query sees every expired session of its namespace.
    const own = uniqueNamespace('migrate');
    const ds = datastore();
    const s = new DatastoreSessionStore({ datastore: ds, kind: KIND, namespace: own, timeoutMs: 10_000, separateBegin: true });
    const raw = (name: string, data: Record<string, unknown>) =>
      ds.save({ key: ds.key({ namespace: own, path: [KIND, name] }), data, excludeFromIndexes: ['data'] });
    const now = Date.now();
    const old = {
      ...base,
      user: 'migrant',
      lastseen: datastore().double(now / 1000),
      createdAt: new Date(now),
      data: '{}',
      securityKeys: [],
    };
    // As the previous version wrote them: expiresAt indexed, no expiry.
    await raw('0-old-expired', { ...old, expiresAt: new Date(now - 1000) });
    await raw('0-old-live', { ...old, expiresAt: new Date(now + 3600_000) });
    await s.update(null, () => put('0-new-expired', record({ user: 'migrant', createdAt: now, expiresAt: now - 1000 })));
    await s.update(null, () => put('f-new-expired', record({ user: 'migrant', createdAt: now, expiresAt: now - 2000 })));
    const expired = async () => {
      const keys: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await s.findKeys({ kind: 'expired', before: now }, 1, cursor);
        keys.push(...page.keys);
        cursor = page.cursor;
      } while (cursor);
      return keys.sort();
    };
    // Each once: the old one by the query on expiresAt, the new ones by their shards.
    expect(await expired()).toEqual(['0-new-expired', '0-old-expired', 'f-new-expired']);
    await s.update(null, () => put('9-new-live', record({ user: 'migrant', createdAt: now, expiresAt: now + 7200_000 })));
    // Listed, the old one by the query on (user, expiresAt) first; the expired ones not read.
    const read = countQueriedEntities();
    try {
      expect((await s.listUserSessions('migrant', now, 10)).sessions.map((x) => x.key)).toEqual(['0-old-live', '9-new-live']);
      expect(read.count).toBe(2);
    } finally {
      read.restore();
    }
    // The next write (a refresh moves expiresAt) stores it in the new shape; the cleanup still finds it once.
    await s.update('0-old-live', (current) => put('0-old-live', { ...current!, expiresAt: now - 500 }));
    const [[entity]] = await ds.runQuery(
      ds.createQuery(own, KIND).filter(new PropertyFilter('expiry', '=', `0:${new Date(now - 500).toISOString()}`)),
    );
    expect(entity).toMatchObject({ user: 'migrant', expiresAt: new Date(now - 500) });
    const [byExpiresAt] = await ds.runQuery(ds.createQuery(own, KIND).filter(new PropertyFilter('expiresAt', '=', new Date(now - 500))));
    expect(byExpiresAt).toEqual([]);
    expect(await expired()).toEqual(['0-new-expired', '0-old-expired', '0-old-live', 'f-new-expired']);
  });

  test('the look-up among sessions without a handle stops at the listing bound: 1,000 live sessions in two pages', async () => {
    const s = store();
    const now = Date.now();
    const many = Array.from({ length: 1200 }, (_, i) => ({
      key: `crowd-${i}`,
      session: record({ user: 'crowd', lastSeen: now, createdAt: now, expiresAt: now + 3600_000 + i }),
    }));
    for (let i = 0; i < many.length; i += 500) {
      await s.update(null, () => ({ writes: { put: many.slice(i, i + 500), delete: [] }, result: undefined }));
    }
    const rpcs = countRpcs();
    const read = countQueriedEntities();
    try {
      expect(await s.findUserSession('crowd', 'A'.repeat(22), now)).toBeNull();
      // The handle's query, the first page's two (the legacy one finds none), the second page's one.
      expect(rpcs.counts).toEqual({ runQuery: 4 });
      expect(read.count).toBe(1000);
    } finally {
      rpcs.restore();
      read.restore();
    }
  });

  test('an entity without data has empty data; a guest entity has no user; a tombstone keeps endedAt', async () => {
    await raw('bare', { ...base, user: '__guest__', securityKeys: ['cd'.repeat(32)], userAgent: 'UA/1', endedAt: new Date(T0 + 5) });
    expect(await store().get('bare')).toEqual({
      data: {},
      user: null,
      lastSeen: T0,
      createdAt: T0,
      expiresAt: T0 + 3600_000,
      staticKeyDigest: 'ab'.repeat(32),
      securityKeyDigests: ['cd'.repeat(32)],
      userAgent: 'UA/1',
      endedAt: T0 + 5,
    });
  });
});

describe('round trips a store saves', () => {
  // Wrapped when this block starts: the first block's restore (afterAll) would undo an earlier wrap.
  let rpc: ReturnType<typeof countRpcs>;
  beforeAll(() => {
    rpc = countRpcs();
  });
  afterAll(() => rpc.restore());
  beforeEach(() => rpc.reset());
  const firestore = () =>
    new DatastoreSessionStore({
      datastore: datastore(),
      kind: KIND,
      namespace: uniqueNamespace('rt'),
      timeoutMs: 10_000,
      separateBegin: true,
    });

  test('without separateBegin (the default), the lookup opens the transaction: no beginTransaction', async () => {
    const store = new DatastoreSessionStore({
      datastore: legacyDatastore(),
      kind: KIND,
      namespace: uniqueNamespace('default'),
      timeoutMs: 10_000,
    });
    await store.update(null, () => put('k', record()));
    rpc.reset();
    await store.update('k', (current) => put('k', { ...current!, user: 'u2' }));
    expect(rpc.counts).toEqual({ lookup: 1, commit: 1 });
  });

  test('a new session whose decision writes nothing costs no call', async () => {
    const store = firestore();
    expect(await store.update(null, () => ({ writes: null, result: 'a' }))).toBe('a');
    expect(await store.update(null, () => ({ writes: { put: [], delete: [] }, result: 'b' }))).toBe('b');
    expect(rpc.total()).toBe(0);
  });

  test('a decision that only deletes commits the delete', async () => {
    const store = firestore();
    await store.update(null, () => put('k', record()));
    rpc.reset();
    await store.update('k', () => ({ writes: { put: [], delete: ['k'] }, result: undefined }));
    expect(rpc.counts).toEqual({ beginTransaction: 1, lookup: 1, commit: 1 });
    expect(await store.get('k')).toBeNull();
  });

  test('ending or deleting no sessions costs no call; ending exactly 500 is one commit, 501 are refused before any call', async () => {
    const store = firestore();
    await store.endSessions([]);
    await store.deleteMany([]);
    expect(rpc.total()).toBe(0);
    const keys = Array.from({ length: 500 }, (_, i) => `e${i}`);
    await store.update(null, () => ({ writes: { put: keys.map((key) => ({ key, session: record() })), delete: [] }, result: undefined }));
    rpc.reset();
    await store.endSessions(keys);
    expect(rpc.counts).toEqual({ commit: 1 });
    expect(await store.get('e499')).toBeNull();
    rpc.reset();
    await expect(store.endSessions([...keys, 'e500'])).rejects.toThrow(new RangeError('at most 500 keys per commit'));
    expect(rpc.total()).toBe(0);
  });

  test('a transaction that fails for another reason than an abort is not retried', async () => {
    const store = firestore();
    await store.update(null, () => put('k', record()));
    rpc.reset();
    const data = Object.assign(emptyData(), { big: 'x'.repeat(1_100_000) }) as SessionData;
    await expect(store.update('k', (current) => put('k', { ...current!, data }))).rejects.toBeInstanceOf(DataTooLargeError);
    expect(rpc.counts.lookup).toBe(1);
    expect(rpc.counts.commit).toBe(1);
  });
});

test('a store in the default namespace (no namespace option) reads, writes, queries and lists', async () => {
  // A kind of its own keeps it apart from other tests' sessions in the default namespace.
  const kind = uniqueNamespace('kind');
  for (const [ds, separateBegin] of [
    [datastore(), true],
    [legacyDatastore(), false],
  ] as const) {
    const store = new DatastoreSessionStore({ datastore: ds, kind, timeoutMs: 10_000, separateBegin });
    await store.update(null, () => put('a', record({ user: 'dn', expiresAt: T0 })));
    await store.update('a', (current) => put('a', { ...current!, data: Object.assign(emptyData(), { n: 2 }) }));
    expect((await store.get('a'))!.data).toEqual({ n: 2 });
    expect(await store.findKeys({ kind: 'expired', before: T0 + 1 }, 10)).toEqual({ keys: ['a'] });
    expect(await store.findKeys({ kind: 'user', user: 'dn', createdAtOrBefore: T0 }, 10)).toEqual({ keys: ['a'] });
    // A session expired by the time asked for is not listed.
    await store.update(null, () => put('b', record({ user: 'dn', expiresAt: T0 - 1 })));
    expect(await store.listUserSessions('dn', T0 - 1, 10)).toEqual({
      sessions: [{ key: 'a', head: { user: 'dn', lastSeen: T0, createdAt: T0, expiresAt: T0, userAgent: null } }],
    });
    expect(await store.findUserSession('dn', deviceHandle('a'), T0 - 1)).toEqual({
      key: 'a',
      head: { user: 'dn', lastSeen: T0, createdAt: T0, expiresAt: T0, userAgent: null },
    });
    await store.deleteMany(['a', 'b']);
    expect(await store.get('a')).toBeNull();
  }
});

test('a store whose start-up gate fails is unavailable, whatever it failed with', async () => {
  for (const reason of [new Error('no credentials yet'), null, undefined, 'a string']) {
    const store = new DatastoreSessionStore({ datastore: datastore(), kind: KIND, timeoutMs: 1000, ready: () => Promise.reject(reason) });
    const err = await store.get('k').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).cause).toBe(reason);
  }
});

test("the deletion engine's calls leave the client's other calls as they were (a listing after a cleanup query)", async () => {
  // One client, as in one process that serves the API and runs a kill or a cleanup.
  const store = new DatastoreSessionStore({
    datastore: new Datastore({ projectId: process.env.GOOGLE_CLOUD_PROJECT ?? 'session-test' }),
    kind: KIND,
    namespace: uniqueNamespace('shared'),
    timeoutMs: 10_000,
    separateBegin: true,
  });
  await store.update(null, () => put('a', record({ user: 'lister' })));
  const listing = {
    sessions: [{ key: 'a', head: { user: 'lister', lastSeen: T0, createdAt: T0, expiresAt: T0 + 3600_000, userAgent: null } }],
  };
  expect(await store.listUserSessions('lister', T0, 10)).toEqual(listing);
  expect(await store.findKeys({ kind: 'user', user: 'lister', createdAtOrBefore: T0 }, 10)).toEqual({ keys: ['a'] });
  await store.deleteMany(['nothing-there']);
  expect(await store.listUserSessions('lister', T0, 10)).toEqual(listing);
  expect(await store.get('a')).not.toBeNull();
  await store.update('a', (current) => put('a', { ...current!, user: 'lister' }));
});
