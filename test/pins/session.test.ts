import { inspect } from 'node:util';
import { DataTooLargeError, InvalidUserError, KeyNotFoundError, SessionEndedError } from '../../shared/errors';
import { digest } from '../../shared/ids';
import { dataSize, emptyData } from '../../shared/json';
import { MemorySessionStore } from '../../shared/memoryStore';
import { GUEST_USER, MAX_USER_BYTES, TOMBSTONE_SECONDS } from '../../shared/session';
import type { Decision, StorageKey, StoredSession } from '../../shared/store';
import { cookieFrom, FakeClock, manager, settings } from '../support/fixtures';

const S = 1000;

/** The memory store with every write recorded: "stays unwritten" is then a fact, not a guess. */
class RecordingStore extends MemorySessionStore {
  writes = 0;
  override async update<T>(key: StorageKey | null, decide: (c: StoredSession | null) => Decision<T>): Promise<T> {
    return super.update(key, (current) => {
      const d = decide(current);
      if (d.writes && (d.writes.put.length > 0 || d.writes.delete.length > 0)) this.writes++;
      return d;
    });
  }
}

function setup(overrides: Parameters<typeof settings>[0] = {}) {
  const store = new RecordingStore();
  const clock = new FakeClock();
  const m = manager(store, clock, settings(overrides));
  return { store, clock, m };
}

async function started(m: ReturnType<typeof setup>['m']) {
  const s = await m.load(undefined);
  s.set('a', 1);
  const out = await m.save(s);
  return { cookie: cookieFrom(out.setCookie), session: s };
}

describe('lifetime boundaries', () => {
  test('a session is alive until one millisecond before lastSeen + lifetime, not at that instant', async () => {
    const { m, clock } = setup({ lifetimeSeconds: 60, refreshIntervalSeconds: 3600 });
    const { cookie } = await started(m);
    clock.advance(60 * S - 1);
    expect((await m.load(cookie)).get('a')).toBe(1);
    clock.advance(1);
    const s = await m.load(cookie);
    expect(s.isNew).toBe(true);
    expect(s.get('a')).toBeUndefined();
  });

  test('expiresAt ends a session on its own, even while lastSeen + lifetime lies later', async () => {
    const { m, store, clock } = setup({ lifetimeSeconds: 60 });
    const { cookie, session } = await started(m);
    const key = digest(session.id);
    const stored = (await store.get(key))!;
    // e.g. written by an instance with a shorter lifetime: expiresAt is what the cleanup goes by.
    await store.update(key, () => ({ writes: { put: [{ key, session: { ...stored, expiresAt: clock.t + 10 * S } }], delete: [] }, result: 0 }));
    clock.advance(10 * S - 1);
    expect((await m.load(cookie)).isNew).toBe(false);
    clock.advance(1);
    expect((await m.load(cookie)).isNew).toBe(true);
    expect(m.isAlive({ ...stored, lastSeen: clock.t, expiresAt: clock.t })).toBe(false);
    expect(m.isAlive({ ...stored, lastSeen: clock.t - 60 * S, expiresAt: clock.t + 60 * S })).toBe(false);
    expect(m.isAlive({ ...stored, lastSeen: clock.t, expiresAt: clock.t + 1 })).toBe(true);
  });

  test('a read rewrites lastseen exactly at the refresh interval, not a millisecond before; the write moves expiry', async () => {
    const { m, store, clock } = setup({ lifetimeSeconds: 3600, refreshIntervalSeconds: 300 });
    const { cookie, session } = await started(m);
    const key = digest(session.id);
    const writes = store.writes;
    clock.advance(300 * S - 1);
    expect((await m.save(await m.load(cookie))).written).toBe(false);
    expect(store.writes).toBe(writes);
    clock.advance(1);
    const out = await m.save(await m.load(cookie));
    expect(out).toEqual({ written: true, setCookie: null, staticSecurityKey: null });
    expect(await store.get(key)).toMatchObject({ lastSeen: clock.t, expiresAt: clock.t + 3600 * S });
  });
});

describe('what is written and which cookie is sent', () => {
  test('a new session that ends up empty is not written and gets no cookie', async () => {
    const { m, store } = setup({ refreshIntervalSeconds: 0 });
    const a = await m.load(undefined);
    a.set('x', 1);
    a.delete('x');
    const b = await m.load(undefined);
    b.reset();
    const c = await m.load(undefined);
    c.logout();
    const d = await m.load(undefined);
    for (const s of [a, b, c, d]) expect(await m.save(s)).toEqual({ written: false, setCookie: null, staticSecurityKey: null });
    const viaWith = await m.withSession(undefined, (s) => s.reset());
    expect(viaWith.outcome).toEqual({ written: false, setCookie: null, staticSecurityKey: null });
    expect(store.writes).toBe(0);
    expect(store.size).toBe(0);
  });

  test('a new session is written when it holds a user, a key, data or was marked changed', async () => {
    const { m, store } = setup();
    const user = await m.load(undefined);
    user.login('u');
    const key = await m.load(undefined);
    key.getSecurityKey();
    const forced = await m.load(undefined);
    forced.markChanged();
    for (const s of [user, key, forced]) {
      const out = await m.save(s);
      expect(out.written).toBe(true);
      expect(out.setCookie).toMatch(/^__Host-viur_cookie_session-test=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
      expect(out.staticSecurityKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
    expect(store.size).toBe(3);
  });

  test('a change that keeps the id sends no Set-Cookie and no static key; a persistent cookie is refreshed on every write', async () => {
    const { m } = setup();
    const { cookie } = await started(m);
    const out = await m.withSession(cookie, (s) => s.set('b', 2));
    expect(out.outcome).toEqual({ written: true, setCookie: null, staticSecurityKey: null });
    const p = setup({ cookie: { name: 'sid', sameSite: 'lax', persistent: true }, lifetimeSeconds: 120 });
    const first = await started(p.m);
    const again = await p.m.withSession(first.cookie, (s) => s.set('b', 2));
    expect(again.outcome.setCookie).toBe(`${first.cookie}; Max-Age=120; Path=/; HttpOnly; Secure; SameSite=Lax`);
    expect(again.outcome.staticSecurityKey).toBeNull();
  });

  test('a cookie naming no live session is cleared when nothing is written; a read of a live one sends nothing', async () => {
    const { m } = setup();
    const stale = `__Host-viur_cookie_session-test=${'A'.repeat(43)}`;
    const out = await m.save(await m.load(stale));
    expect(out.setCookie).toBe('__Host-viur_cookie_session-test=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax');
    const { cookie } = await started(m);
    expect((await m.save(await m.load(cookie))).setCookie).toBeNull();
    expect((await m.save(await m.load(undefined))).setCookie).toBeNull();
  });

  test('login rotates the id: the old entity becomes a tombstone, the new one holds the user, the new cookie and static key are sent once', async () => {
    const { m, store, clock } = setup({ lifetimeSeconds: 100 });
    const { cookie, session } = await started(m);
    const oldKey = digest(session.id);
    clock.advance(5 * S);
    const { outcome, session: s } = await m.withSession(cookie, (x) => x.login('user-1'));
    expect(outcome.written).toBe(true);
    expect(cookieFrom(outcome.setCookie)).not.toBe(cookie);
    expect(outcome.staticSecurityKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s.validateStaticSecurityKey(outcome.staticSecurityKey!)).toBe(true);
    expect(await store.get(oldKey)).toMatchObject({ endedAt: clock.t, expiresAt: clock.t + TOMBSTONE_SECONDS * S, securityKeyDigests: [], staticKeyDigest: '' });
    expect(Object.keys((await store.get(oldKey))!.data)).toEqual([]);
    expect(await store.get(digest(s.id))).toMatchObject({ user: 'user-1', lastSeen: clock.t, createdAt: clock.t, expiresAt: clock.t + 100 * S });
    const later = await m.save(await m.load(cookieFrom(outcome.setCookie)));
    expect(later.staticSecurityKey).toBeNull();
  });

  test('persistent fields the session does not hold are not created by login or logout', async () => {
    const { m } = setup({ persistentFieldsOnLogin: ['language', 'cart'], persistentFieldsOnLogout: ['language'] });
    const { cookie } = await started(m);
    const { session, outcome } = await m.withSession(cookie, (s) => {
      s.set('cart', [1]);
      s.login('u');
    });
    expect(Object.keys(session.toObject())).toEqual(['cart']);
    const after = await m.withSession(cookieFrom(outcome.setCookie), (s) => s.logout());
    expect(Object.keys(after.session.toObject())).toEqual([]);
    expect(after.session.has('language')).toBe(false);
    expect(after.session.user).toBeNull();
  });

  test('saving a session that was ended meanwhile fails with session_ended and writes nothing', async () => {
    const { m, store } = setup();
    const { cookie, session } = await started(m);
    const s = await m.load(cookie);
    s.set('b', 2);
    await store.deleteMany([digest(session.id)]);
    await expect(m.save(s)).rejects.toBeInstanceOf(SessionEndedError);
    expect(store.size).toBe(0);
  });
});

describe('limits', () => {
  test('data exactly at the size limit (its JSON text in UTF-8) is accepted, one byte more is refused and changes nothing', async () => {
    const limit = 2048;
    const { m } = setup({ maxDataBytes: limit });
    const s = await m.load(undefined);
    const frame = dataSize(Object.assign(emptyData(), { k: '' }));
    const fill = 'x'.repeat(limit - frame);
    expect(dataSize(Object.assign(emptyData(), { k: fill }))).toBe(limit);
    s.set('k', fill);
    expect(() => s.set('k', fill + 'y')).toThrow(new DataTooLargeError(limit + 1, limit));
    expect(s.get('k')).toBe(fill);
    expect(() => s.merge({ k2: 'z' })).toThrow(DataTooLargeError);
    expect(s.has('k2')).toBe(false);
  });

  test('a user id of exactly 500 bytes is accepted, 501 refused; empty and the guest name are not user ids', async () => {
    expect(MAX_USER_BYTES).toBe(500);
    const { m } = setup();
    const s = await m.load(undefined);
    s.login('ü'.repeat(250));
    expect(s.user).toBe('ü'.repeat(250));
    expect(() => s.login('u'.repeat(501))).toThrow(new InvalidUserError('a user id may have at most 500 bytes'));
    expect(() => s.login('')).toThrow(new InvalidUserError('a user id must be a non-empty string'));
    expect(() => s.login(GUEST_USER)).toThrow(new InvalidUserError('__guest__ is not a user id'));
  });

  test('security keys: 1 to maxSecurityKeys at once; beyond the bound the oldest stop being valid', async () => {
    const { m } = setup({ maxSecurityKeys: 3 });
    const s = await m.load(undefined);
    expect(s.getSecurityKeys(3)).toHaveLength(3);
    for (const n of [0, 4, 1.5]) expect(() => s.getSecurityKeys(n)).toThrow(new RangeError('count must be an integer from 1 to 3'));
    const [k1, k2] = s.getSecurityKeys(2);
    const [k3] = s.getSecurityKeys(1);
    const [k4] = s.getSecurityKeys(1);
    // Held now: k2, k3, k4 (k1 and the first three were dropped, oldest first).
    expect(s.validateSecurityKey(k1!)).toBe(false);
    expect(s.validateSecurityKey(k2!)).toBe(true);
    expect(s.validateSecurityKey(k2!)).toBe(false);
    expect(s.validateSecurityKey(k4!)).toBe(true);
    expect(s.validateSecurityKey(k3!)).toBe(true);
    expect(s.validateSecurityKey('junk')).toBe(false);
  });

  test('the static key validates only itself', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    s.set('a', 1);
    const { staticSecurityKey } = await m.save(s);
    expect(s.validateStaticSecurityKey(staticSecurityKey!)).toBe(true);
    expect(s.validateStaticSecurityKey('B'.repeat(43))).toBe(false);
    expect(s.validateStaticSecurityKey(`${staticSecurityKey}x`)).toBe(false);
  });
});

describe('the map API', () => {
  test('get with a fallback, getOrThrow and delete of a missing key', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(s.get('missing', 'dflt')).toBe('dflt');
    s.set('n', 0);
    expect(s.get('n', 5)).toBe(0);
    expect(s.getOrThrow('n')).toBe(0);
    expect(() => s.getOrThrow('missing')).toThrow(new KeyNotFoundError('missing'));
    expect(() => s.delete('missing')).toThrow(KeyNotFoundError);
    expect(s.items()).toEqual([['n', 0]]);
    expect(s.entries()).toEqual([['n', 0]]);
  });

  test('neither JSON nor inspect shows the id or the keys', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    s.set('a', 1);
    const key = s.getSecurityKey();
    expect(JSON.stringify(s)).toBe('{"user":null,"data":{"a":1}}');
    expect(inspect(s)).toBe('Session { user: null, keys: ["a"] }');
    expect(JSON.stringify(s) + inspect(s)).not.toContain(key);
  });
});
