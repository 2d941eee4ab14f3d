import { PropertyFilter } from '@google-cloud/datastore';
import { DatastoreSessionStore } from '../../../lib/store/datastoreStore';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import type { SessionStore, StoredSession } from '../../../lib/store/sessionStore';
import { emptyData, type SessionData } from '../../../lib/core/json';
import { v1 } from '@google-cloud/datastore';
import { countRpcs, datastore, datastoreStore, uniqueNamespace } from '../../support/fixtures';
import { legacyDatastoreStore } from '../../support/legacyDatastore';

const T0 = Date.UTC(2026, 0, 1);

function record(overrides: Partial<StoredSession> = {}): StoredSession {
  return {
    data: Object.assign(emptyData(), { a: 1 }) as SessionData,
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

async function all(store: SessionStore, selector: Parameters<SessionStore['findKeys']>[0], limit = 3): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.findKeys(selector, limit, cursor);
    expect(page.keys.length).toBeLessThanOrEqual(limit);
    keys.push(...page.keys);
    cursor = page.cursor;
  } while (cursor);
  return keys.sort();
}

const stores: Array<[string, () => SessionStore]> = [
  ['MemorySessionStore', () => new MemorySessionStore()],
  ['DatastoreSessionStore (emulator)', () => datastoreStore(uniqueNamespace('contract'))],
  // The transaction path production takes (the lookup opens it), which the Firestore emulator cannot run.
  ['DatastoreSessionStore (legacy emulator, lookup-opened transactions)', () => legacyDatastoreStore(uniqueNamespace('contract'))],
];

describe.each(stores)('store contract: %s', (_name, make) => {
  let store: SessionStore;
  beforeEach(() => {
    store = make();
  });

  test('get of an absent key is null', async () => {
    expect(await store.get('0'.repeat(64))).toBeNull();
  });

  test('a record round-trips exactly', async () => {
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
    const r = record({ data, user: 'user-1', securityKeyDigests: ['11'.repeat(32), '22'.repeat(32)] });
    await store.update(null, () => put('k1', r));
    const back = await store.get('k1');
    expect(back).toEqual(r);
    expect(JSON.stringify(back!.data)).toBe(JSON.stringify(r.data));
  });

  test('a 500 KB string nested in a value saves (data is excluded from indexes at every depth)', async () => {
    const big = 'x'.repeat(500_000);
    const r = record({ data: Object.assign(emptyData(), { outer: { inner: [{ big }] } }) as SessionData });
    await store.update(null, () => put('big', r));
    expect(((await store.get('big'))!.data.outer as { inner: Array<{ big: string }> }).inner[0]!.big).toHaveLength(500_000);
  });

  test('update reads the current record and commits puts and deletes together', async () => {
    await store.update(null, () => put('old', record()));
    const seen = await store.update('old', (current) => ({
      writes: { put: [{ key: 'new', session: record({ user: 'u' }) }], delete: ['old'] },
      result: current?.data.a,
    }));
    expect(seen).toBe(1);
    expect(await store.get('old')).toBeNull();
    expect((await store.get('new'))?.user).toBe('u');
  });

  test('update with no writes changes nothing; a throwing decide writes nothing', async () => {
    await store.update(null, () => put('k', record()));
    expect(await store.update('k', () => ({ writes: null, result: 7 }))).toBe(7);
    await expect(
      store.update('k', () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await store.get('k')).toEqual(record());
  });

  test('update of an absent key sees null', async () => {
    expect(await store.update('missing', (current) => ({ writes: null, result: current }))).toBeNull();
  });

  test('inserting a new session never overwrites an existing one', async () => {
    await store.update(null, () => put('dup', record()));
    await expect(store.update(null, () => put('dup', record({ user: 'intruder' })))).rejects.toThrow();
    expect((await store.get('dup'))?.user).toBeNull();
  });

  test('findKeys selects expired sessions, pages with a cursor, and never returns a live one', async () => {
    for (let i = 0; i < 7; i++) await store.update(null, () => put(`exp${i}`, record({ expiresAt: T0 + i * 1000 })));
    await store.update(null, () => put('live', record({ expiresAt: T0 + 10_000 })));
    expect(await all(store, { kind: 'expired', before: T0 + 7000 })).toEqual(['exp0', 'exp1', 'exp2', 'exp3', 'exp4', 'exp5', 'exp6']);
    expect(await all(store, { kind: 'expired', before: T0 + 3000 })).toEqual(['exp0', 'exp1', 'exp2']);
  });

  test('findKeys selects by user and creation time; __guest__ means no user, null means everyone', async () => {
    await store.update(null, () => put('a-old', record({ user: 'a', createdAt: T0 })));
    await store.update(null, () => put('a-new', record({ user: 'a', createdAt: T0 + 5000 })));
    await store.update(null, () => put('b', record({ user: 'b', createdAt: T0 })));
    await store.update(null, () => put('g', record({ user: null, createdAt: T0 })));
    expect(await all(store, { kind: 'user', user: 'a', createdAtOrBefore: T0 + 1000 })).toEqual(['a-old']);
    expect(await all(store, { kind: 'user', user: 'a', createdAtOrBefore: T0 + 5000 })).toEqual(['a-new', 'a-old']);
    expect(await all(store, { kind: 'user', user: '__guest__', createdAtOrBefore: T0 + 5000 })).toEqual(['g']);
    expect(await all(store, { kind: 'user', user: null, createdAtOrBefore: T0 + 1000 })).toEqual(['a-old', 'b', 'g']);
  });

  test('listUserSessions pages through one user\'s sessions, heads only, dead ones included', async () => {
    const mine = ['m1', 'm2', 'm3', 'm4', 'm5'];
    for (const [i, k] of mine.entries()) {
      await store.update(null, () => put(k, record({ user: 'me', lastSeen: T0 + i, createdAt: T0 - i, expiresAt: T0 + i * 1000, userAgent: i === 0 ? null : `ua-${i}` })));
    }
    await store.update(null, () => put('ended', record({ user: 'me', endedAt: T0 + 7 })));
    await store.update(null, () => put('other', record({ user: 'someone-else' })));
    await store.update(null, () => put('guest', record({ user: null })));
    const seen: Array<{ key: string; head: unknown }> = [];
    let cursor: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await store.listUserSessions('me', 2, cursor);
      expect(page.sessions.length).toBeLessThanOrEqual(2);
      seen.push(...page.sessions);
      cursor = page.cursor;
      if (!cursor) break;
    }
    expect(cursor).toBeUndefined();
    // A tombstone is listed with its endedAt, so that liveness can rule it out.
    expect(seen.find((s) => s.key === 'ended')!.head).toEqual({ user: 'me', lastSeen: T0, createdAt: T0, expiresAt: T0 + 3600_000, endedAt: T0 + 7, userAgent: 'Mozilla/5.0 (X11; Linux x86_64) contract' });
    seen.splice(seen.findIndex((s) => s.key === 'ended'), 1);
    expect(seen.map((s) => s.key).sort()).toEqual(mine);
    for (const { key, head } of seen) {
      const i = mine.indexOf(key);
      // Exactly the head: no data, no key digests.
      expect(head).toEqual({ user: 'me', lastSeen: T0 + i, createdAt: T0 - i, expiresAt: T0 + i * 1000, userAgent: i === 0 ? null : `ua-${i}` });
    }
    expect((await store.listUserSessions('nobody', 10)).sessions).toEqual([]);
  });

  test('deleteMany deletes, ignores absent keys, and refuses more than 500 keys', async () => {
    await store.update(null, () => put('d1', record()));
    await store.update(null, () => put('d2', record()));
    await store.deleteMany(['d1', 'absent']);
    expect(await store.get('d1')).toBeNull();
    expect(await store.get('d2')).not.toBeNull();
    await expect(store.deleteMany(Array.from({ length: 501 }, (_, i) => `k${i}`))).rejects.toThrow(RangeError);
    // endSessions: the same, for requests.
    await store.update(null, () => put('e1', record()));
    await store.endSessions(['e1', 'absent']);
    expect(await store.get('e1')).toBeNull();
    expect(await store.get('d2')).not.toBeNull();
    await expect(store.endSessions(Array.from({ length: 501 }, (_, i) => `k${i}`))).rejects.toThrow(RangeError);
  });
});

describe('DatastoreSessionStore entity layout', () => {
  test('stores the entity of SPEC §1 under the key name given, with only user/createdAt/expiresAt indexed', async () => {
    const ns = uniqueNamespace('layout');
    const ds = datastore();
    const store = new DatastoreSessionStore({ datastore: ds, kind: 'viur-session', namespace: ns, timeoutMs: 10_000, separateBegin: true });
    await store.update(null, () => put('f'.repeat(64), record({ user: null })));
    const [entity] = await ds.get(ds.key({ namespace: ns, path: ['viur-session', 'f'.repeat(64)] }));
    expect(entity).toMatchObject({ user: '__guest__', lastseen: T0 / 1000, staticSecurityKey: 'ab'.repeat(32), securityKeys: ['cd'.repeat(32)] });
    expect(entity.createdAt).toBeInstanceOf(Date);
    expect(entity.expiresAt).toBeInstanceOf(Date);
    // data is one JSON text (SPEC §1: one parse per request whatever the number of keys).
    expect(entity.data).toBe('{"a":1}');
    expect(entity.userAgent).toBe('Mozilla/5.0 (X11; Linux x86_64) contract');
    // Unindexed properties cannot be queried on: a filter on them finds nothing.
    const q = ds.createQuery(ns, 'viur-session').filter(new PropertyFilter('staticSecurityKey', '=', 'ab'.repeat(32)));
    expect((await ds.runQuery(q))[0]).toHaveLength(0);
    const q3 = ds.createQuery(ns, 'viur-session').filter(new PropertyFilter('userAgent', '=', 'Mozilla/5.0 (X11; Linux x86_64) contract'));
    expect((await ds.runQuery(q3))[0]).toHaveLength(0);
    const q2 = ds.createQuery(ns, 'viur-session').filter(new PropertyFilter('user', '=', '__guest__'));
    expect((await ds.runQuery(q2))[0]).toHaveLength(1);
  });
});

describe('DatastoreSessionStore listing of a user\'s sessions', () => {
  test('one query whose answer carries no data, even of a session near the size limit; older entities without userAgent list as null', async () => {
    const ns = uniqueNamespace('heads');
    const ds = datastore();
    const store = new DatastoreSessionStore({ datastore: ds, kind: 'viur-session', namespace: ns, timeoutMs: 10_000, separateBegin: true });
    const big = 'x'.repeat(900_000);
    await store.update(null, () => put('big', record({ user: 'u', data: Object.assign(emptyData(), { big }) as SessionData })));
    // Written as before this field existed.
    await ds.save({ key: ds.key({ namespace: ns, path: ['viur-session', 'legacy'] }), data: { user: 'u', lastseen: T0 / 1000, createdAt: new Date(T0), expiresAt: new Date(T0 + 1000), data: {}, staticSecurityKey: 'ab'.repeat(32), securityKeys: [] }, excludeFromIndexes: ['data', 'lastseen'] });
    const rpcs = countRpcs();
    let bytes = 0;
    // Observes the size of the answer as the gRPC client hands it over (the store passes a callback).
    const proto = v1.DatastoreClient.prototype as unknown as { runQuery: (...args: unknown[]) => unknown };
    const runQuery = proto.runQuery;
    proto.runQuery = function (this: unknown, ...args: unknown[]) {
      const callback = args[args.length - 1];
      if (typeof callback === 'function') {
        args[args.length - 1] = (err: unknown, resp: unknown, ...rest: unknown[]) => {
          bytes += JSON.stringify(resp ?? null).length;
          return (callback as (...a: unknown[]) => unknown)(err, resp, ...rest);
        };
      }
      return runQuery.apply(this, args);
    };
    try {
      const page = await store.listUserSessions('u', 10);
      expect(rpcs.counts).toEqual({ runQuery: 1 });
      expect(page.sessions.map((s) => [s.key, s.head.userAgent]).sort()).toEqual([
        ['big', 'Mozilla/5.0 (X11; Linux x86_64) contract'],
        ['legacy', null],
      ]);
    } finally {
      proto.runQuery = runQuery;
      rpcs.restore();
    }
    // The 900 KB of data stayed in the database.
    expect(bytes).toBeLessThan(10_000);
  });
});
