import { MemorySessionStore } from '../../../lib/store/memoryStore';
import { DataTooLargeError, InvalidKeyError, InvalidValueError, KeyNotFoundError, InvalidUserError } from '../../../lib/core/errors';
import { digest } from '../../../lib/core/ids';
import type { SessionStore, StoredSession, Decision, StorageKey } from '../../../lib/store/sessionStore';
import { cookieFrom, FakeClock, manager, settings, testConfig } from '../../support/fixtures';

/** The memory store, with every call counted: the session logic must not call it more than needed. */
class CountingStore extends MemorySessionStore {
  gets = 0;
  updates = 0;
  override async get(key: StorageKey): Promise<StoredSession | null> {
    this.gets++;
    return super.get(key);
  }
  override async update<T>(key: StorageKey | null, decide: (c: StoredSession | null) => Decision<T>): Promise<T> {
    this.updates++;
    return super.update(key, decide);
  }
}

function setup(overrides: Parameters<typeof settings>[0] = {}) {
  const store = new CountingStore();
  const clock = new FakeClock();
  const m = manager(store, clock, settings(overrides));
  return { store, clock, m };
}

async function started(m: ReturnType<typeof setup>['m'], data: Record<string, string | number> = { a: 1 }) {
  const s = await m.load(undefined);
  s.merge(data);
  const out = await m.save(s);
  return { cookie: cookieFrom(out.setCookie), out, session: s };
}

describe('loading and saving', () => {
  test('a new session that holds nothing is not written and sets no cookie', async () => {
    const { m, store } = setup();
    const s = await m.load(undefined);
    expect(s.isNew).toBe(true);
    expect(await m.save(s)).toEqual({ written: false, setCookie: null, staticSecurityKey: null });
    expect(store.updates).toBe(0);
    expect(store.size).toBe(0);
  });

  test('a new session with data is written once, with a cookie and its static key revealed', async () => {
    const { m, store } = setup();
    const { out } = await started(m);
    expect(out.written).toBe(true);
    expect(out.setCookie).toMatch(/^__Host-viur_cookie_session-test=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    expect(out.staticSecurityKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(store.size).toBe(1);
  });

  test('the store key is the SHA-256 digest of the id, never the id', async () => {
    const { m, store } = setup();
    const { cookie } = await started(m);
    const id = cookie.split('=')[1]!;
    expect(await store.get(id)).toBeNull();
    expect(await store.get(digest(id))).not.toBeNull();
  });

  test('a read-only request costs one read and no write', async () => {
    const { m, store } = setup();
    const { cookie } = await started(m);
    store.gets = store.updates = 0;
    const s = await m.load(cookie);
    expect(s.get('a')).toBe(1);
    expect(await m.save(s)).toEqual({ written: false, setCookie: null, staticSecurityKey: null });
    expect([store.gets, store.updates]).toEqual([1, 0]);
  });

  test('a junk or foreign cookie costs no read and is never adopted', async () => {
    const { m, store } = setup();
    store.gets = 0;
    const junk = await m.load('__Host-viur_cookie_session-test=not-a-session-id; other=1');
    expect(store.gets).toBe(0);
    expect(junk.isNew).toBe(true);
    const forged = 'A'.repeat(43);
    const s = await m.load(`__Host-viur_cookie_session-test=${forged}`);
    expect(store.gets).toBe(1);
    s.set('x', 1);
    const out = await m.save(s);
    expect(out.setCookie).not.toContain(forged);
    expect(await store.get(digest(forged))).toBeNull();
  });

  test('lastseen is rewritten only when older than the refresh interval', async () => {
    const { m, store, clock } = setup();
    const { cookie } = await started(m);
    clock.advance(4 * 60_000);
    expect((await m.save(await m.load(cookie))).written).toBe(false);
    clock.advance(2 * 60_000);
    expect((await m.save(await m.load(cookie))).written).toBe(true);
    const stored = (await store.get(digest(cookie.split('=')[1]!)))!;
    expect(stored.lastSeen).toBe(clock.now());
    expect(stored.expiresAt).toBe(clock.now() + 3600_000);
  });

  test('expiry is checked on every read: an idle session past its lifetime is gone and its cookie cleared', async () => {
    const { m, clock } = setup({ lifetimeSeconds: 600 });
    const { cookie } = await started(m);
    clock.advance(599_000);
    expect((await m.load(cookie)).get('a')).toBe(1);
    clock.advance(2_000);
    const s = await m.load(cookie);
    expect(s.isNew).toBe(true);
    expect(s.get('a')).toBeUndefined();
    expect((await m.save(s)).setCookie).toMatch(/^__Host-viur_cookie_session-test=; Max-Age=0; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax$/);
  });

  test('markChanged forces a write', async () => {
    const { m } = setup();
    const { cookie } = await started(m);
    const s = await m.load(cookie);
    s.markChanged();
    expect((await m.save(s)).written).toBe(true);
  });

  test('a session ended by someone else while a request ran is not resurrected', async () => {
    const { m } = setup();
    const { cookie } = await started(m);
    const slow = await m.load(cookie);
    await m.withSession(cookie, (s) => s.reset());
    slow.set('late', true);
    await expect(m.save(slow)).rejects.toMatchObject({ code: 'session_ended' });
  });
});

describe('the map API', () => {
  test('has / get with default / getOrThrow / set / delete / merge / items', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(s.has('a')).toBe(false);
    expect(s.get('a')).toBeUndefined();
    expect(s.get('a', 'dflt')).toBe('dflt');
    expect(() => s.getOrThrow('a')).toThrow(KeyNotFoundError);
    expect(() => s.delete('a')).toThrow(KeyNotFoundError);
    s.set('a', { n: [1] });
    expect(s.getOrThrow('a')).toEqual({ n: [1] });
    s.merge({ b: 2, c: null });
    expect(s.items()).toEqual([['a', { n: [1] }], ['b', 2], ['c', null]]);
    s.delete('b');
    expect(s.has('b')).toBe(false);
    expect(s.entries().map(([k]) => k)).toEqual(['a', 'c']);
  });

  test('values are copied in and out: mutating a returned value changes nothing', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    const v = { list: [1] };
    s.set('v', v);
    v.list.push(2);
    (s.get('v') as { list: number[] }).list.push(3);
    expect(s.get('v')).toEqual({ list: [1] });
  });

  test.each([
    ['undefined', undefined],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['a Date', new Date()],
    ['a Map', new Map()],
    ['a function', () => 1],
    ['a bigint', BigInt(1)],
    ['a nested undefined', { a: [undefined] }],
    ['a lone surrogate', '\ud800'],
  ])('a non-JSON value (%s) is refused with InvalidValueError', async (_label, value) => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(() => s.set('k', value as never)).toThrow(InvalidValueError);
    expect(s.has('k')).toBe(false);
  });

  test('a circular value is refused', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    expect(() => s.set('k', loop as never)).toThrow(InvalidValueError);
  });

  test.each(['', '__proto__', '__key__', 'x'.repeat(257)])('the key %p is refused', async (key) => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(() => s.set(key, 1)).toThrow(InvalidKeyError);
  });

  test('merge is all or nothing', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(() => s.merge({ good: 1, __proto__x__: 2, ['__bad__']: 3 })).toThrow(InvalidKeyError);
    expect(s.has('good')).toBe(false);
  });

  test('data over the size limit is refused and nothing is recorded', async () => {
    const { m } = setup({ maxDataBytes: 2000 });
    const s = await m.load(undefined);
    s.set('small', 'x'.repeat(1000));
    expect(() => s.set('big', 'x'.repeat(1000))).toThrow(DataTooLargeError);
    expect(s.has('big')).toBe(false);
    expect((await m.save(s)).written).toBe(true);
  });

  test('integers beyond 2^53 keep the double they were given (JSON numbers are doubles)', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    s.set('n', 2 ** 53 + 2);
    const { cookie } = { cookie: cookieFrom((await m.save(s)).setCookie) };
    expect((await m.load(cookie)).get('n')).toBe(9007199254740994);
  });

  test('secrets are not shown by JSON.stringify or console.log', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    s.set('a', 1);
    const key = s.getSecurityKey();
    const out = await m.save(s);
    const id = cookieFrom(out.setCookie).split('=')[1]!;
    const { inspect } = await import('node:util');
    for (const text of [JSON.stringify(s), inspect(s, { depth: 10, showHidden: true })]) {
      expect(text).not.toContain(id);
      expect(text).not.toContain(key);
      expect(text).not.toContain(out.staticSecurityKey!);
    }
  });
});

describe('reset, login and logout', () => {
  test('reset deletes the stored session and starts an empty one under a new id', async () => {
    const { m, store } = setup();
    const { cookie } = await started(m);
    const { outcome } = await m.withSession(cookie, (s) => {
      s.reset();
      s.markChanged();
    });
    // The old entity is a tombstone: not alive, no data; its id answers session_ended (issue 12).
    const old = (await store.get(digest(cookie.split('=')[1]!)))!;
    expect([m.isAlive(old), old.data]).toEqual([false, {}]);
    const fresh = cookieFrom(outcome.setCookie);
    expect(fresh).not.toBe(cookie);
    expect((await m.load(fresh)).entries()).toEqual([]);
    await expect(m.load(cookie)).rejects.toMatchObject({ code: 'session_ended' });
  });

  test('login keeps only persistentFieldsOnLogin, binds the user under a new id, and reveals the new static key once', async () => {
    const { m } = setup({ persistentFieldsOnLogin: ['language', 'cart'] });
    const { cookie } = await started(m, { language: 'de', cart: 3, secret: 'x' });
    const { outcome, session } = await m.withSession(cookie, (s) => s.login('user-1'));
    const loggedIn = cookieFrom(outcome.setCookie);
    expect(loggedIn).not.toBe(cookie);
    expect(session.user).toBe('user-1');
    const s = await m.load(loggedIn);
    expect(s.user).toBe('user-1');
    expect(s.toObject()).toEqual({ language: 'de', cart: 3 });
    expect(s.validateStaticSecurityKey(outcome.staticSecurityKey!)).toBe(true);
    await expect(m.load(cookie)).rejects.toMatchObject({ code: 'session_ended' });
    const again = await m.withSession(loggedIn, (x) => x.set('y', 1));
    expect(again.outcome.staticSecurityKey).toBeNull();
  });

  test('logout keeps only persistentFieldsOnLogout and leaves a guest session', async () => {
    const { m } = setup({ persistentFieldsOnLogout: ['language'] });
    const { cookie } = await started(m, { language: 'fr', other: 1 });
    const login = await m.withSession(cookie, (s) => s.login('u'));
    const out = await m.withSession(cookieFrom(login.outcome.setCookie), (s) => s.logout());
    const guest = await m.load(cookieFrom(out.outcome.setCookie));
    expect(guest.user).toBeNull();
    expect(guest.toObject()).toEqual({ language: 'fr' });
  });

  test('login refuses the guest marker and empty ids', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(() => s.login('__guest__')).toThrow(InvalidUserError);
    expect(() => s.login('')).toThrow(InvalidUserError);
  });
});

describe('security keys', () => {
  test('a one-time key persists a new session, validates once, and is then spent', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    const key = s.getSecurityKey();
    const out = await m.save(s);
    expect(out.written).toBe(true);
    const cookie = cookieFrom(out.setCookie);
    expect((await m.withSession(cookie, (x) => x.validateSecurityKey(key))).result).toBe(true);
    expect((await m.withSession(cookie, (x) => x.validateSecurityKey(key))).result).toBe(false);
  });

  test('several keys are valid at once, each once; beyond the bound the oldest is dropped', async () => {
    const { m } = setup({ maxSecurityKeys: 3 });
    const s = await m.load(undefined);
    const keys = s.getSecurityKeys(3);
    const newest = s.getSecurityKey();
    const cookie = cookieFrom((await m.save(s)).setCookie);
    expect((await m.withSession(cookie, (x) => x.validateSecurityKey(keys[0]!))).result).toBe(false);
    for (const k of [keys[1]!, keys[2]!, newest]) expect((await m.withSession(cookie, (x) => x.validateSecurityKey(k))).result).toBe(true);
    expect(() => s.getSecurityKeys(4)).toThrow(RangeError);
  });

  test('wrong, malformed and other sessions\' keys are refused', async () => {
    const { m } = setup();
    const a = await m.load(undefined);
    const keyA = a.getSecurityKey();
    await m.save(a);
    const b = await m.load(undefined);
    b.getSecurityKey();
    expect(b.validateSecurityKey(keyA)).toBe(false);
    expect(b.validateSecurityKey('short')).toBe(false);
    expect(b.validateSecurityKey('')).toBe(false);
  });

  test('the static key validates every time; a wrong one never', async () => {
    const { m } = setup();
    const { out, cookie } = await started(m);
    const s = await m.load(cookie);
    expect(s.validateStaticSecurityKey(out.staticSecurityKey!)).toBe(true);
    expect(s.validateStaticSecurityKey(out.staticSecurityKey!)).toBe(true);
    expect(s.validateStaticSecurityKey('B'.repeat(43))).toBe(false);
  });
});

describe('cookie attributes', () => {
  test.each([
    [{}, /^__Host-viur_cookie_session-test=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/],
    [{ SESSION_SAME_SITE: 'strict' }, /; SameSite=Strict$/],
    [{ SESSION_SAME_SITE: 'none' }, /; Secure; SameSite=None$/],
    [{ SESSION_SAME_SITE: 'off' }, /; Path=\/; HttpOnly; Secure$/],
    [{ SESSION_COOKIE_PERSISTENT: 'true', SESSION_LIFETIME_SECONDS: '900' }, /^__Host-viur_cookie_session-test=[^;]+; Max-Age=900; Path=\/; HttpOnly; Secure; SameSite=Lax$/],
    [{ SESSION_COOKIE_NAME: '__Host-sid' }, /^__Host-sid=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/],
  ])('%j gives %s', async (env, pattern) => {
    const config = testConfig(env as Record<string, string>);
    const m = manager(new MemorySessionStore(), new FakeClock(), config.session);
    const s = await m.load(undefined);
    s.set('a', 1);
    const header = (await m.save(s)).setCookie!;
    expect(header).toMatch(pattern);
    expect(header).not.toMatch(/Domain=/);
  });

  test('a persistent cookie is re-sent on every write so its Max-Age slides', async () => {
    const config = testConfig({ SESSION_COOKIE_PERSISTENT: 'true' });
    const m = manager(new MemorySessionStore(), new FakeClock(), config.session);
    const s = await m.load(undefined);
    s.set('a', 1);
    const cookie = cookieFrom((await m.save(s)).setCookie);
    expect((await m.withSession(cookie, (x) => x.set('b', 2))).outcome.setCookie).toMatch(/Max-Age=3600/);
  });
});

describe('a store that is shared', () => {
  test('two requests changing different keys of one session both survive (load/save merges)', async () => {
    const { m } = setup();
    const { cookie } = await started(m);
    const r1 = await m.load(cookie);
    const r2 = await m.load(cookie);
    r1.set('x', 1);
    r2.set('y', 2);
    await m.save(r1);
    await m.save(r2);
    expect((await m.load(cookie)).toObject()).toEqual({ a: 1, x: 1, y: 2 });
  });

  test('the same key: last writer wins', async () => {
    const { m } = setup();
    const { cookie } = await started(m);
    const r1 = await m.load(cookie);
    const r2 = await m.load(cookie);
    r1.set('a', 'first');
    r2.set('a', 'second');
    await m.save(r1);
    await m.save(r2);
    expect((await m.load(cookie)).get('a')).toBe('second');
  });

  test('with load/save, a key consumed by a concurrent request makes save fail', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    const key = s.getSecurityKey();
    const cookie = cookieFrom((await m.save(s)).setCookie);
    const r1 = await m.load(cookie);
    const r2 = await m.load(cookie);
    expect(r1.validateSecurityKey(key)).toBe(true);
    expect(r2.validateSecurityKey(key)).toBe(true);
    await m.save(r1);
    await expect(m.save(r2)).rejects.toMatchObject({ code: 'security_key_used' });
  });
});

export type { SessionStore };
