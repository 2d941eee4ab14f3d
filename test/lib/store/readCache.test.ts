import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SessionEndedError } from '../../../lib/core/errors';
import { digest } from '../../../lib/core/ids';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import { ReadCachingStore } from '../../../lib/store/readCache';
import { createRuntime, type Runtime } from '../../../lib/setup/runtime';
import { parseDataText } from '../../../lib/core/json';
import type { Decision, HeadPage, HeadRef, KeyPage, SessionStore, StorageKey, StoredSession } from '../../../lib/store/sessionStore';
import { cookieFrom, countRpcs, datastore, datastoreStore, FakeClock, testConfig, uniqueNamespace } from '../../support/fixtures';
import { keyOf, stored } from '../../support/seed';

const TTL_MS = 2000;

/**
 * Two instances of the service: two runtimes, each with its own Datastore store (and its own read
 * cache) on one namespace of the emulator, sharing one fake clock so the cache bound is exact.
 */
function twoInstances() {
  const namespace = uniqueNamespace('cache');
  const clock = new FakeClock();
  const config = testConfig({ SESSION_READ_CACHE_MS: String(TTL_MS) });
  const a = createRuntime(config, { store: datastoreStore(namespace, datastore()), clock });
  const b = createRuntime(config, { store: datastoreStore(namespace, datastore()), clock });
  return { a, b, clock };
}

async function started(rt: Runtime, data: Record<string, number | string> = { n: 1 }) {
  const s = await rt.sessions.load(undefined);
  s.merge(data);
  const out = await rt.sessions.save(s);
  return { cookie: cookieFrom(out.setCookie), id: s.id };
}

let rpcs: ReturnType<typeof countRpcs>;
beforeAll(() => {
  rpcs = countRpcs();
});
afterAll(() => rpcs.restore());

describe('the read cache (SESSION_READ_CACHE_MS) across two instances on the emulator', () => {
  test('the runtime wraps its store only when SESSION_READ_CACHE_MS > 0', () => {
    expect(createRuntime(testConfig(), { store: new MemorySessionStore() }).store).toBeInstanceOf(MemorySessionStore);
    expect(createRuntime(testConfig({ SESSION_READ_CACHE_MS: '500' }), { store: new MemorySessionStore() }).store).toBeInstanceOf(
      ReadCachingStore,
    );
  });

  test('a read of a session cached on this instance costs no round trip; the first read elsewhere costs one', async () => {
    const { a, b } = twoInstances();
    const { cookie } = await started(a);
    rpcs.reset();
    expect((await a.sessions.load(cookie)).get('n')).toBe(1);
    expect((await a.sessions.load(cookie)).get('n')).toBe(1);
    expect(rpcs.total()).toBe(0);
    expect((await b.sessions.load(cookie)).get('n')).toBe(1);
    expect(rpcs.counts.lookup).toBe(1);
    rpcs.reset();
    expect((await b.sessions.load(cookie)).get('n')).toBe(1);
    expect(rpcs.total()).toBe(0);
  });

  test('what this instance writes it sees at once, without a lookup', async () => {
    const { a } = twoInstances();
    const { cookie } = await started(a);
    await a.sessions.withSession(cookie, (s) => s.set('n', 2));
    rpcs.reset();
    expect((await a.sessions.load(cookie)).get('n')).toBe(2);
    expect(rpcs.total()).toBe(0);
  });

  test('a write elsewhere is seen within the bound', async () => {
    const { a, b, clock } = twoInstances();
    const { cookie } = await started(a);
    await b.sessions.load(cookie);
    await a.sessions.withSession(cookie, (s) => s.set('n', 2));
    clock.advance(TTL_MS - 1);
    expect((await b.sessions.load(cookie)).get('n')).toBe(1); // still within the bound: allowed
    clock.advance(1);
    expect((await b.sessions.load(cookie)).get('n')).toBe(2);
  });

  test('a kill elsewhere is seen within the bound; a kill on this instance at once', async () => {
    const { a, b, clock } = twoInstances();
    const one = await started(a);
    const two = await started(a);
    await b.sessions.load(one.cookie);
    await b.sessions.load(two.cookie);
    // Killed through a's store (another instance), then through b's own store.
    await a.store.deleteMany([digest(one.id)]);
    await b.store.deleteMany([digest(two.id)]);
    expect((await b.sessions.load(two.cookie)).isNew).toBe(true);
    clock.advance(TTL_MS);
    expect((await b.sessions.load(one.cookie)).isNew).toBe(true);
  });

  test('a write always reads fresh: a session killed elsewhere gets session_ended (409), even while cached here', async () => {
    const { a, b } = twoInstances();
    const { cookie, id } = await started(a);
    const loaded = await b.sessions.load(cookie);
    await a.store.deleteMany([digest(id)]);
    const cachedAgain = await b.sessions.load(cookie);
    expect(cachedAgain.isNew).toBe(false); // served from b's cache within the bound
    cachedAgain.set('n', 5);
    const err = await b.sessions.save(cachedAgain).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SessionEndedError);
    expect(err).toMatchObject({ code: 'session_ended', status: 409 });
    // And it did not come back: neither in the store nor in b's cache.
    loaded.set('n', 6);
    await expect(b.sessions.save(loaded)).rejects.toBeInstanceOf(SessionEndedError);
    expect((await b.sessions.load(cookie)).isNew).toBe(true);
    expect((await a.sessions.load(cookie)).isNew).toBe(true);
  });

  test('no lost updates: a write on an instance whose cache is stale merges into what is stored', async () => {
    const { a, b, clock } = twoInstances();
    const { cookie } = await started(a, { x: 0 });
    await b.sessions.load(cookie);
    await a.sessions.withSession(cookie, (s) => s.set('x', 1));
    await b.sessions.withSession(cookie, (s) => s.set('y', 2));
    const onB = await b.sessions.load(cookie);
    expect([onB.get('x'), onB.get('y')]).toEqual([1, 2]);
    // load()/save() too: save() applies this request's operations to the fresh read, not to the cached copy.
    const stale = await b.sessions.load(cookie);
    await a.sessions.withSession(cookie, (s) => s.set('x', 3));
    stale.set('z', 4);
    await b.sessions.save(stale);
    const onBAgain = await b.sessions.load(cookie);
    expect([onBAgain.get('x'), onBAgain.get('y'), onBAgain.get('z')]).toEqual([3, 2, 4]);
    clock.advance(TTL_MS);
    const onA = await a.sessions.load(cookie);
    expect([onA.get('x'), onA.get('y'), onA.get('z')]).toEqual([3, 2, 4]);
  });

  test('a one-time security key stays single-use while the session is cached on both instances', async () => {
    const { a, b } = twoInstances();
    const { cookie } = await started(a);
    let key = '';
    await a.sessions.withSession(cookie, (s) => {
      key = s.getSecurityKey();
    });
    await b.sessions.load(cookie);
    expect((await a.sessions.withSession(cookie, (s) => s.validateSecurityKey(key))).result).toBe(true);
    // b's cached copy still lists the key; its transaction reads the store and finds it used.
    expect((await b.sessions.withSession(cookie, (s) => s.validateSecurityKey(key))).result).toBe(false);
    expect((await a.sessions.withSession(cookie, (s) => s.validateSecurityKey(key))).result).toBe(false);
  });
});

describe('the read cache on its own', () => {
  const HOUR = 3600_000;

  test('a cached entry never makes a dead session alive: expiry is checked on every read', async () => {
    const clock = new FakeClock();
    const config = testConfig({ SESSION_LIFETIME_SECONDS: '60', SESSION_READ_CACHE_MS: '60000' });
    const inner = new MemorySessionStore();
    // A bound far longer than the lifetime, to show the lifetime still wins.
    const rt = createRuntime(config, { store: new ReadCachingStore(inner, { ttlMs: HOUR, clock }), clock });
    const { cookie } = await started(rt);
    clock.advance(59_000);
    expect((await rt.sessions.load(cookie)).isNew).toBe(false);
    clock.advance(1_000);
    expect((await rt.sessions.load(cookie)).isNew).toBe(true);
  });

  test('bounded in entries: the least recently used go first', async () => {
    const clock = new FakeClock();
    const inner = new MemorySessionStore();
    const cache = new ReadCachingStore(inner, { ttlMs: HOUR, clock, maxEntries: 3 });
    for (let i = 0; i < 5; i++)
      await inner.update(null, () => ({ writes: { put: [{ key: keyOf(`s${i}`), session: stored() }], delete: [] }, result: null }));
    for (let i = 0; i < 5; i++) await cache.get(keyOf(`s${i}`));
    expect(cache.stats.entries).toBe(3);
    const reads = countGets(inner);
    await cache.get(keyOf('s4'));
    await cache.get(keyOf('s0'));
    expect(reads()).toBe(1);
  });

  test('bounded in bytes: sessions are evicted to fit, one larger than the bound is not cached', async () => {
    const clock = new FakeClock();
    const inner = new MemorySessionStore();
    const cache = new ReadCachingStore(inner, { ttlMs: HOUR, clock, maxBytes: 10_000 });
    const big = (n: number): StoredSession =>
      stored({ data: Object.assign(Object.create(null) as Record<string, string>, { v: 'x'.repeat(n) }) });
    const put = (label: string, s: StoredSession) =>
      inner.update(null, () => ({ writes: { put: [{ key: keyOf(label), session: s }], delete: [] }, result: null }));
    await put('a', big(4000));
    await put('b', big(4000));
    await put('c', big(4000));
    await put('huge', big(20_000));
    for (const l of ['a', 'b', 'c', 'huge']) await cache.get(keyOf(l));
    expect(cache.stats.entries).toBe(2);
    expect(cache.stats.bytes).toBeLessThanOrEqual(10_000);
    const reads = countGets(inner);
    await cache.get(keyOf('huge'));
    await cache.get(keyOf('c'));
    expect(reads()).toBe(1);
  });

  test('bounded in memory, not only in counted bytes: 40 sessions of a nested value keep at most about maxBytes (issue 26, 1)', async () => {
    const MiB = 1024 * 1024;
    const maxBytes = 4 * MiB;
    // 33,000 × [[[]]]: 231 KB of JSON text, 99,001 JSON values (within every limit), about 20× its
    // text in heap once parsed.
    const text = JSON.stringify({ v: Array.from({ length: 33_000 }, () => [[[]]]) });
    const inner = new TextStore();
    for (let i = 0; i < 40; i++) inner.put(keyOf(`nested${i}`), text);
    // Warm-up on a cache of its own: the first round also leaves compiled code and V8's own tables.
    const fill = async (cache: ReadCachingStore) => {
      for (let i = 0; i < 40; i++) expect((await cache.get(keyOf(`nested${i}`)))!.data.v).toHaveLength(33_000);
    };
    await fill(new ReadCachingStore(inner, { ttlMs: HOUR, clock: new FakeClock(), maxBytes }));
    const cache = new ReadCachingStore(inner, { ttlMs: HOUR, clock: new FakeClock(), maxBytes });
    const before = liveHeap();
    await fill(cache);
    const kept = liveHeap() - before;
    expect(cache.stats.bytes).toBeLessThanOrEqual(maxBytes);
    expect(cache.stats.entries).toBeGreaterThanOrEqual(16); // it does cache: 4 MiB holds 18 of these texts
    // What a full collection leaves is what the cache keeps: within its bound (plus slack for noise).
    expect(kept).toBeLessThan(maxBytes + MiB);
    // And a hit still answers the whole value, as its own copy.
    const hit = (await cache.get(keyOf('nested39')))!;
    expect(hit.data.v).toHaveLength(33_000);
    expect(Object.getPrototypeOf(hit.data)).toBeNull();
  });

  test('counted as held: data whose text is ASCII counts a byte a character, any other text (two-byte in V8) two', async () => {
    const inner = new TextStore();
    inner.put(keyOf('ascii'), JSON.stringify({ v: 'x'.repeat(10_000) }));
    inner.put(keyOf('wide'), JSON.stringify({ v: 'ü'.repeat(10_000) }));
    const cache = new ReadCachingStore(inner, { ttlMs: HOUR, clock: new FakeClock() });
    await cache.get(keyOf('ascii'));
    const ascii = cache.stats.bytes;
    await cache.get(keyOf('wide'));
    expect(ascii).toBeGreaterThan(10_000);
    expect(cache.stats.bytes - ascii).toBeGreaterThanOrEqual(20_000);
  });

  test('every reader gets its own copy: changing one changes neither the cache nor another session', async () => {
    const clock = new FakeClock();
    const inner = new MemorySessionStore();
    const cache = new ReadCachingStore(inner, { ttlMs: HOUR, clock });
    await inner.update(null, () => ({
      writes: { put: [{ key: keyOf('p'), session: stored({ securityKeyDigests: ['d1'] }) }], delete: [] },
      result: null,
    }));
    const miss = (await cache.get(keyOf('p')))!;
    miss.data.secret = 'from the miss';
    const first = (await cache.get(keyOf('p')))!; // a hit
    expect(first.data.secret).toBeUndefined();
    first.data.secret = 'mine';
    first.securityKeyDigests.push('d2');
    const second = (await cache.get(keyOf('p')))!;
    expect(second.data.secret).toBeUndefined();
    expect(second.securityKeyDigests).toEqual(['d1']);
    expect(Object.getPrototypeOf(second.data)).toBeNull();
    expect(await cache.get(keyOf('other'))).toBeNull();
  });

  test('a read that was in flight while this instance wrote does not put the older value back', async () => {
    const clock = new FakeClock();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    /** Its reads take the value at once but answer only when the gate opens. */
    class SlowReads extends MemorySessionStore {
      override async get(key: StorageKey) {
        const value = await super.get(key);
        await gate;
        return value;
      }
    }
    const inner = new SlowReads();
    await inner.update(null, () => ({
      writes: { put: [{ key: keyOf('r'), session: stored({ data: Object.assign(Object.create(null), { n: 1 }) }) }], delete: [] },
      result: null,
    }));
    const cache = new ReadCachingStore(inner, { ttlMs: HOUR, clock });
    const inFlight = cache.get(keyOf('r'));
    await cache.update(keyOf('r'), (current) => ({
      writes: { put: [{ key: keyOf('r'), session: { ...current!, data: Object.assign(Object.create(null), { n: 2 }) } }], delete: [] },
      result: null,
    }));
    release();
    expect((await inFlight)!.data.n).toBe(1);
    expect((await cache.get(keyOf('r')))!.data.n).toBe(2);
    expect(cache.stats.entries).toBe(1);
  });
});

function countGets(store: MemorySessionStore): () => number {
  let n = 0;
  const original = store.get.bind(store);
  store.get = (key) => {
    n++;
    return original(key);
  };
  return () => n;
}

/** heapUsed after two full collections (gc exposed at run time through V8's flag). */
function liveHeap(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * A store that keeps each session's data as one JSON text and parses it on every read, as the
 * Datastore store does: what it holds is only the texts, so the heap a test measures is the cache's.
 */
class TextStore implements SessionStore {
  readonly #texts = new Map<StorageKey, string>();

  put(key: StorageKey, text: string): void {
    this.#texts.set(key, text);
  }

  async get(key: StorageKey): Promise<StoredSession | null> {
    const text = this.#texts.get(key);
    return text === undefined ? null : stored({ data: parseDataText(text) });
  }

  async update<T>(key: StorageKey | null, decide: (current: StoredSession | null) => Decision<T>): Promise<T> {
    return decide(key === null ? null : await this.get(key)).result;
  }

  findKeys(): Promise<KeyPage> {
    throw new Error('not used');
  }

  listUserSessions(): Promise<HeadPage> {
    throw new Error('not used');
  }

  findUserSession(): Promise<HeadRef | null> {
    throw new Error('not used');
  }

  endSessions(): Promise<void> {
    throw new Error('not used');
  }

  deleteMany(): Promise<void> {
    throw new Error('not used');
  }
}
