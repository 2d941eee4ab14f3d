/**
 * The SessionStore contract (lib/store/testing.ts, the package's `/testing` entry) run on the three
 * stores, a check that the suite fails a broken store, and Datastore-specific layout tests.
 */
import assert from 'node:assert/strict';
import { PropertyFilter } from '@google-cloud/datastore';
import { deviceHandle } from '../../../lib/core/devices';
import { DatastoreSessionStore } from '../../../lib/store/datastoreStore';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import type {
  Decision,
  HeadPage,
  HeadRef,
  KeyPage,
  SessionSelector,
  SessionStore,
  StorageKey,
  StoredSession,
} from '../../../lib/store/sessionStore';
import { runStoreContract, sampleSession, storeContract } from '../../../lib/store/testing';
import { emptyData } from '../../../lib/core/json';
import { v1 } from '@google-cloud/datastore';
import { countRpcs, datastore, datastoreStore, uniqueNamespace } from '../../support/fixtures';
import { legacyDatastoreStore } from '../../support/legacyDatastore';

const T0 = Date.UTC(2026, 0, 1);

const record = sampleSession;

const put = (key: string, session: StoredSession) => ({ writes: { put: [{ key, session }], delete: [] }, result: undefined });

const stores: Array<[string, () => SessionStore]> = [
  ['MemorySessionStore', () => new MemorySessionStore()],
  ['DatastoreSessionStore (emulator)', () => datastoreStore(uniqueNamespace('contract'))],
  // The transaction path production takes (the lookup opens it), which the Firestore emulator cannot run.
  ['DatastoreSessionStore (legacy emulator, lookup-opened transactions)', () => legacyDatastoreStore(uniqueNamespace('contract'))],
];

for (const [name, make] of stores) runStoreContract({ describe, test }, name, make);

/** Pages as if the cursor were not there: every call answers the first page again. */
class CursorIgnoringStore extends MemorySessionStore {
  override findKeys(selector: SessionSelector, limit: number): Promise<KeyPage> {
    return super.findKeys(selector, limit);
  }
}

/** Commits the puts of an update but drops its deletes. */
class DeleteDroppingStore extends MemorySessionStore {
  override update<T>(key: StorageKey | null, decide: (current: StoredSession | null) => Decision<T>): Promise<T> {
    return super.update(key, (current) => {
      const decision = decide(current);
      return { ...decision, writes: decision.writes && { ...decision.writes, delete: [] } };
    });
  }
}

/** Lists the user's sessions whatever their expiry (what a store without the expiresAt filter does). */
class DeadListingStore extends MemorySessionStore {
  override listUserSessions(user: string, _expiresAfter: number, limit: number, cursor?: string): Promise<HeadPage> {
    return super.listUserSessions(user, -Infinity, limit, cursor);
  }
}

/** Finds a session by its handle whoever it belongs to. */
class AnyUserFindingStore extends MemorySessionStore {
  override async findUserSession(user: string, handle: string, expiresAfter: number): Promise<HeadRef | null> {
    for (const owner of ['a', 'b', user]) {
      const found = await super.findUserSession(owner, handle, expiresAfter);
      if (found) return found;
    }
    return null;
  }
}

/** The names of the cases a store fails, each failure checked to be an assertion of the suite (not a crash of it). */
async function failedCases(make: () => SessionStore): Promise<string[]> {
  const failed: string[] = [];
  for (const c of storeContract(make)) {
    try {
      await c.run();
    } catch (err) {
      expect(err).toBeInstanceOf(assert.AssertionError);
      failed.push(c.name);
    }
  }
  return failed;
}

// A suite that cannot fail proves nothing: each broken store fails exactly the cases about what it breaks.
describe('the store contract fails a broken store', () => {
  test('findKeys that ignores the cursor: the four findKeys cases fail (and end, instead of paging forever)', async () => {
    expect(await failedCases(() => new CursorIgnoringStore())).toEqual([
      'findKeys selects expired sessions, pages with a cursor, and never returns a live one',
      'findKeys selects by user and creation time; __guest__ means no user, null means everyone',
      'findKeys finds expired sessions whatever their keys start with, each once, across pages',
      'findKeys withUsers gives each key its stored user (guests as GUEST_USER), page by page',
    ]);
  });

  test('update that commits puts but not deletes: the update case fails', async () => {
    const failed = await failedCases(() => new DeleteDroppingStore());
    expect(failed).toEqual(['update reads the current record and commits puts and deletes together']);
  });

  test('a listing that reads dead sessions too, a look-up by handle that ignores the user: each fails its case', async () => {
    expect(await failedCases(() => new DeadListingStore())).toEqual([
      "listUserSessions pages through one user's sessions expiring after a time, latest expiry first, heads only",
    ]);
    expect(await failedCases(() => new AnyUserFindingStore())).toEqual([
      "findUserSession finds a user's session by its device handle, head only; another user's, an expired or an absent one is null",
    ]);
  });

  test('the healthy MemorySessionStore passes every case run directly from storeContract', async () => {
    expect(await failedCases(() => new MemorySessionStore())).toEqual([]);
  });
});

describe('DatastoreSessionStore entity layout', () => {
  test('stores the entity of docs/storage.md under the key name given, with only user/createdAt/expiresAt/handle indexed', async () => {
    const ns = uniqueNamespace('layout');
    const ds = datastore();
    const store = new DatastoreSessionStore({ datastore: ds, kind: 'viur-session', namespace: ns, timeoutMs: 10_000, separateBegin: true });
    await store.update(null, () => put('f'.repeat(64), record({ user: null })));
    const [entity] = await ds.get(ds.key({ namespace: ns, path: ['viur-session', 'f'.repeat(64)] }));
    expect(entity).toMatchObject({
      user: '__guest__',
      lastseen: T0 / 1000,
      staticSecurityKey: 'ab'.repeat(32),
      securityKeys: ['cd'.repeat(32)],
    });
    expect(entity.createdAt).toBeInstanceOf(Date);
    expect(entity.expiresAt).toBeInstanceOf(Date);
    // data is one JSON text (docs/storage.md#properties: one parse per request whatever the number of keys).
    expect(entity.data).toBe('{"a":1}');
    expect(entity.userAgent).toBe('Mozilla/5.0 (X11; Linux x86_64) contract');
    // The device handle of the key, indexed: the device routes find the session by it.
    expect(entity.handle).toBe(deviceHandle('f'.repeat(64)));
    const byHandle = ds.createQuery(ns, 'viur-session').filter(new PropertyFilter('handle', '=', deviceHandle('f'.repeat(64))));
    expect((await ds.runQuery(byHandle))[0]).toHaveLength(1);
    // Unindexed properties cannot be queried on: a filter on them finds nothing.
    const q = ds.createQuery(ns, 'viur-session').filter(new PropertyFilter('staticSecurityKey', '=', 'ab'.repeat(32)));
    expect((await ds.runQuery(q))[0]).toHaveLength(0);
    const q3 = ds.createQuery(ns, 'viur-session').filter(new PropertyFilter('userAgent', '=', 'Mozilla/5.0 (X11; Linux x86_64) contract'));
    expect((await ds.runQuery(q3))[0]).toHaveLength(0);
    const q2 = ds.createQuery(ns, 'viur-session').filter(new PropertyFilter('user', '=', '__guest__'));
    expect((await ds.runQuery(q2))[0]).toHaveLength(1);
  });
});

describe("DatastoreSessionStore listing of a user's sessions", () => {
  test('one page (its two queries sent together) whose answer carries no data, even of a session near the size limit; older entities without userAgent list as null', async () => {
    const ns = uniqueNamespace('heads');
    const ds = datastore();
    const store = new DatastoreSessionStore({ datastore: ds, kind: 'viur-session', namespace: ns, timeoutMs: 10_000, separateBegin: true });
    const big = 'x'.repeat(900_000);
    await store.update(null, () => put('big', record({ user: 'u', data: Object.assign(emptyData(), { big }) })));
    // Written as before this field existed.
    await ds.save({
      key: ds.key({ namespace: ns, path: ['viur-session', 'legacy'] }),
      data: {
        user: 'u',
        lastseen: T0 / 1000,
        createdAt: new Date(T0),
        expiresAt: new Date(T0 + 1000),
        data: {},
        staticSecurityKey: 'ab'.repeat(32),
        securityKeys: [],
      },
      excludeFromIndexes: ['data', 'lastseen'],
    });
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
      const page = await store.listUserSessions('u', T0, 10);
      // The query on (user, expiresAt) for sessions written before `userExpiry` existed, and the one on it.
      expect(rpcs.counts).toEqual({ runQuery: 2 });
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
