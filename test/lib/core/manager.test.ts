import { SecurityKeyConflictError, SessionEndedError, TooManyKeysError } from '../../../lib/core/errors';
import { digest } from '../../../lib/core/ids';
import { MAX_COOKIE_CANDIDATES, TOMBSTONE_SECONDS } from '../../../lib/core/limits';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import { cookieFrom, FakeClock, manager, settings, testConfig } from '../../support/fixtures';
import { seed, stored } from '../../support/seed';
import { CountingStore, setup, started } from '../../support/sessions';

/*
 * The SessionManager (lib/core/manager.ts): loading and saving, what a save writes and which cookie
 * it sends, lifetimes, the cookie values it picks, rotation, concurrent requests (the replay of
 * lib/core/operations.ts), the session cap and the listing of a user's sessions. The Session object's
 * own API is in session.test.ts.
 */

const S = 1000;

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
    const id = cookie.split('=')[1];
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
    const stored = (await store.get(digest(cookie.split('=')[1])))!;
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
    expect((await m.save(s)).setCookie).toMatch(
      /^__Host-viur_cookie_session-test=; Max-Age=0; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax$/,
    );
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
    expect(out.setCookie).toBe(
      '__Host-viur_cookie_session-test=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax',
    );
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
    expect(await store.get(oldKey)).toMatchObject({
      endedAt: clock.t,
      expiresAt: clock.t + TOMBSTONE_SECONDS * S,
      securityKeyDigests: [],
      staticKeyDigest: '',
    });
    expect(Object.keys((await store.get(oldKey))!.data)).toEqual([]);
    expect(await store.get(digest(s.id))).toMatchObject({
      user: 'user-1',
      lastSeen: clock.t,
      createdAt: clock.t,
      expiresAt: clock.t + 100 * S,
    });
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
    await store.update(key, () => ({
      writes: { put: [{ key, session: { ...stored, expiresAt: clock.t + 10 * S } }], delete: [] },
      result: 0,
    }));
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

describe('the absolute lifetime', () => {
  test('a session ends exactly absoluteLifetime after its creation however busy; 0 means no absolute end', async () => {
    const { m, store, clock } = setup({ lifetimeSeconds: 60, refreshIntervalSeconds: 0, absoluteLifetimeSeconds: 100 });
    const { cookie, session } = await started(m);
    const key = digest(session.id);
    // Busy all the time: every read rewrites lastSeen, and expiresAt never lies past the absolute end.
    for (let t = 0; t < 90; t += 30) {
      clock.advance(30 * S);
      expect((await m.save(await m.load(cookie))).written).toBe(true);
    }
    expect((await store.get(key))!.expiresAt).toBe(clock.t - 90 * S + 100 * S);
    clock.advance(10 * S - 1);
    expect((await m.load(cookie)).isNew).toBe(false);
    clock.advance(1);
    expect((await m.load(cookie)).isNew).toBe(true);

    const unlimited = setup({ lifetimeSeconds: 60, refreshIntervalSeconds: 0, absoluteLifetimeSeconds: 0 });
    const u = await started(unlimited.m);
    for (let t = 0; t < 5; t++) {
      unlimited.clock.advance(50 * S);
      expect((await unlimited.m.save(await unlimited.m.load(u.cookie))).written).toBe(true);
    }
    expect((await unlimited.m.load(u.cookie)).get('a')).toBe(1);
    expect((await unlimited.store.get(digest(u.session.id)))!.expiresAt).toBe(unlimited.clock.t + 60 * S);
  });

  test('isAlive: the absolute end, the idle end and expiresAt each end a session on their own', () => {
    const { m, clock } = setup({ lifetimeSeconds: 60, absoluteLifetimeSeconds: 100 });
    const t = clock.t;
    const head = { user: null, lastSeen: t, createdAt: t - 100 * S + 1, expiresAt: t + 60 * S, userAgent: null };
    expect(m.isAlive(head)).toBe(true);
    expect(m.isAlive({ ...head, createdAt: t - 100 * S })).toBe(false);
    expect(m.isAlive({ ...head, lastSeen: t - 60 * S + 1 })).toBe(true);
    expect(m.isAlive({ ...head, lastSeen: t - 60 * S })).toBe(false);
    expect(m.isAlive({ ...head, endedAt: t })).toBe(false);
    expect(m.isAlive(head, t + 1)).toBe(false);
  });
});

describe('cookie attributes', () => {
  test.each([
    [{}, /^__Host-viur_cookie_session-test=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/],
    [{ SESSION_SAME_SITE: 'strict' }, /; SameSite=Strict$/],
    [{ SESSION_SAME_SITE: 'none' }, /; Secure; SameSite=None$/],
    [{ SESSION_SAME_SITE: 'off' }, /; Path=\/; HttpOnly; Secure$/],
    [
      { SESSION_COOKIE_PERSISTENT: 'true', SESSION_LIFETIME_SECONDS: '900' },
      /^__Host-viur_cookie_session-test=[^;]+; Max-Age=900; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    ],
    [{ SESSION_COOKIE_NAME: '__Host-sid' }, /^__Host-sid=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/],
  ])('%j gives %s', async (env, pattern) => {
    const config = testConfig(env);
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

describe('several cookies of the session name (cookie tossing)', () => {
  const name = '__Host-viur_cookie_session-test';
  const junk = (c: string) => `${name}=${c.repeat(43)}`;

  test('the first value naming a live session wins, whatever comes before it; at most three are looked up', async () => {
    expect(MAX_COOKIE_CANDIDATES).toBe(3);
    const { m } = setup();
    const { cookie } = await started(m);
    const s = await m.load(`${junk('A')}; ${junk('B')}; ${cookie}`);
    expect(s.get('a')).toBe(1);
    // The live one is fourth: not looked up, so a fresh session (and no clearing cookie: the name came several times).
    const fourth = await m.load(`${junk('A')}; ${junk('B')}; ${junk('C')}; ${cookie}`);
    expect(fourth.isNew).toBe(true);
    expect(await m.save(fourth)).toEqual({ written: false, setCookie: null, staticSecurityKey: null });
    // Repeats and malformed values cost no candidate place.
    expect((await m.load(`${junk('A')}; ${junk('A')}; ${name}=junk; ${junk('A')}; ${junk('B')}; ${cookie}`)).get('a')).toBe(1);
  });

  test('withSession with several values changes the live session, not a planted one', async () => {
    const { m, store } = setup();
    const { cookie, session } = await started(m);
    const { session: s } = await m.withSession(`${junk('Z')}; ${cookie}`, (x) => x.set('b', 2));
    expect(s.isNew).toBe(false);
    expect((await store.get(digest(session.id)))!.data).toEqual({ a: 1, b: 2 });
  });

  test('a tombstone among the values answers session_ended only when no value names a live session', async () => {
    const { m } = setup();
    const old = await started(m);
    const { outcome } = await m.withSession(old.cookie, (s) => s.login('u'));
    const fresh = cookieFrom(outcome.setCookie);
    await expect(m.load(old.cookie)).rejects.toBeInstanceOf(SessionEndedError);
    await expect(m.withSession(old.cookie, (s) => s.set('x', 1))).rejects.toBeInstanceOf(SessionEndedError);
    await expect(m.load(`${old.cookie}; ${junk('Q')}`)).rejects.toBeInstanceOf(SessionEndedError);
    expect((await m.load(`${old.cookie}; ${fresh}`)).user).toBe('u');
    expect((await m.load(`${fresh}; ${old.cookie}`)).user).toBe('u');
  });

  test('a tombstone past its own expiry is just gone: a fresh session, the cookie cleared', async () => {
    const { m, clock } = setup();
    const old = await started(m);
    await m.withSession(old.cookie, (s) => s.reset());
    clock.advance(TOMBSTONE_SECONDS * S - 1);
    await expect(m.load(old.cookie)).rejects.toBeInstanceOf(SessionEndedError);
    clock.advance(1);
    const s = await m.load(old.cookie);
    expect(s.isNew).toBe(true);
    expect((await m.save(s)).setCookie).toMatch(/Max-Age=0/);
  });
});

describe('rotation and what it writes', () => {
  test('a logout that keeps nothing stores only the tombstone and clears the cookie', async () => {
    const { m, store } = setup({ persistentFieldsOnLogout: [] });
    const { cookie, session } = await started(m);
    const { outcome, session: s } = await m.withSession(cookie, (x) => x.logout());
    expect(outcome).toEqual({ written: true, setCookie: expect.stringMatching(/Max-Age=0/), staticSecurityKey: null });
    expect(await store.get(digest(s.id))).toBeNull();
    expect((await store.get(digest(session.id)))!.endedAt).toBeDefined();
    expect(store.size).toBe(1);
  });

  test('a reset with load/save writes the new session and the tombstone in one commit', async () => {
    const { m, store, clock } = setup();
    const { cookie, session } = await started(m);
    const writes = store.writes;
    clock.advance(S);
    const s = await m.load(cookie);
    s.reset();
    s.set('n', 1);
    const out = await m.save(s);
    expect(store.writes).toBe(writes + 1);
    expect(cookieFrom(out.setCookie)).not.toBe(cookie);
    expect(out.staticSecurityKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await store.get(digest(s.id))).toMatchObject({ data: { n: 1 }, createdAt: clock.t });
    expect(await store.get(digest(session.id))).toMatchObject({ endedAt: clock.t, createdAt: clock.t - S, user: null });
  });

  test('the session a login starts has its own creation time, so its absolute lifetime starts anew', async () => {
    const { m, store, clock } = setup({ absoluteLifetimeSeconds: 100, lifetimeSeconds: 3600 });
    const { cookie } = await started(m);
    clock.advance(50 * S);
    const { session } = await m.withSession(cookie, (x) => x.login('u'));
    expect(await store.get(digest(session.id))).toMatchObject({ createdAt: clock.t, expiresAt: clock.t + 100 * S });
  });

  test('the tombstone keeps the user, creation time and user agent of the rotated session, and is seen now', async () => {
    const { m, store, clock } = setup();
    const { session: first, outcome } = await m.withSession(undefined, (s) => s.login('u'), { userAgent: 'UA/1' });
    clock.advance(7 * S);
    await m.withSession(cookieFrom(outcome.setCookie), (s) => s.logout());
    expect(await store.get(digest(first.id))).toMatchObject({
      user: 'u',
      createdAt: clock.t - 7 * S,
      lastSeen: clock.t,
      endedAt: clock.t,
      userAgent: 'UA/1',
    });
  });

  test('a logout that keeps a persistent field keeps the new guest session with it', async () => {
    const { m, store } = setup({ persistentFieldsOnLogout: ['language'] });
    const { outcome } = await m.withSession(undefined, (s) => {
      s.login('u');
      s.set('language', 'de');
    });
    const after = await m.withSession(cookieFrom(outcome.setCookie), (s) => s.logout());
    expect(after.outcome.setCookie).toMatch(/^__Host-viur_cookie_session-test=[A-Za-z0-9_-]{43};/);
    expect(await store.get(digest(after.session.id))).toMatchObject({ user: null, data: { language: 'de' } });
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

  test('a key consumed by a concurrent request fails the save with security_key_used and writes nothing', async () => {
    const { m, store } = setup();
    const s0 = await m.load(undefined);
    const key = s0.getSecurityKey();
    const cookie = cookieFrom((await m.save(s0)).setCookie);
    const a = await m.load(cookie);
    const b = await m.load(cookie);
    expect(a.validateSecurityKey(key)).toBe(true);
    expect(b.validateSecurityKey(key)).toBe(true);
    b.set('b', 1);
    await m.save(a);
    const writes = store.writes;
    await expect(m.save(b)).rejects.toBeInstanceOf(SecurityKeyConflictError);
    expect(store.writes).toBe(writes);
    expect((await m.load(cookie)).has('b')).toBe(false);
  });

  test('new keys are added to what is stored, never replacing keys another request fetched', async () => {
    const { m } = setup();
    const { cookie } = await started(m);
    const a = await m.load(cookie);
    const b = await m.load(cookie);
    const ka = a.getSecurityKey();
    const kb = b.getSecurityKey();
    await m.save(a);
    await m.save(b);
    const s = await m.load(cookie);
    expect(s.validateSecurityKey(ka)).toBe(true);
    expect(s.validateSecurityKey(kb)).toBe(true);
  });
});

describe('the session cap (SESSION_MAX_SESSIONS_PER_USER)', () => {
  test('a login beyond the cap ends the least recently used sessions of that user only', async () => {
    const { m, store, clock } = setup({ maxSessionsPerUser: 2 });
    const keys: string[] = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(S);
      const { session } = await m.withSession(undefined, (s) => s.login('u'));
      keys.push(digest(session.id));
    }
    const other = await m.withSession(undefined, (s) => s.login('v'));
    expect(await store.get(keys[0])).toBeNull();
    expect(await store.get(keys[1])).not.toBeNull();
    expect(await store.get(keys[2])).not.toBeNull();
    expect(await store.get(digest(other.session.id))).not.toBeNull();
    // A change that is no login ends nothing, even over the cap.
    const before = store.size;
    const { session: s3 } = await m.load(undefined).then(async (s) => {
      s.set('guest', 1);
      await m.save(s);
      return { session: s };
    });
    expect(s3.user).toBeNull();
    expect(store.size).toBe(before + 1);
  });

  test('0 means no cap', async () => {
    const { m, store } = setup({ maxSessionsPerUser: 0 });
    for (let i = 0; i < 4; i++) await m.withSession(undefined, (s) => s.login('u'));
    expect(store.size).toBe(4);
  });

  test('a change of a signed-in session ends nothing even when its user is over the cap; the next login trims', async () => {
    const store = new CountingStore();
    const clock = new FakeClock();
    const loose = manager(store, clock, settings({ maxSessionsPerUser: 0 }));
    const cookies: string[] = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(S);
      cookies.push(cookieFrom((await loose.withSession(undefined, (s) => s.login('u'))).outcome.setCookie));
    }
    const capped = manager(store, clock, settings({ maxSessionsPerUser: 1 }));
    await capped.withSession(cookies[0], (s) => s.set('x', 1));
    expect(await capped.liveSessions('u')).toHaveLength(3);
    // Later than every other session (the cap ranks by last use; a tie would be broken by key).
    clock.advance(S);
    const { session } = await capped.withSession(undefined, (s) => s.login('u'));
    expect((await capped.liveSessions('u')).map((r) => r.key)).toEqual([digest(session.id)]);
  });
});

describe('listing the sessions of a user', () => {
  test('pages of at most 500 heads are read until the store has no more; the listing looks at 1,000 at most', async () => {
    const clock = new FakeClock();
    const inner = new MemorySessionStore();
    const limits: number[] = [];
    const store = Object.assign(Object.create(inner) as MemorySessionStore, {
      listUserSessions: (user: string, expiresAfter: number, limit: number, cursor?: string) => {
        limits.push(limit);
        return inner.listUserSessions(user, expiresAfter, limit, cursor);
      },
    });
    const m = manager(store, clock);
    await seed(
      inner,
      Array.from({ length: 1200 }, (_, i) => [`u-${i}`, stored({ user: 'u', createdAt: clock.t, lastSeen: clock.t })]),
    );
    expect(await m.liveSessions('u')).toHaveLength(1200);
    expect(limits).toEqual([500, 500, 500]);
    limits.length = 0;
    expect(await m.liveSessions('u', 700)).toHaveLength(700);
    expect(limits).toEqual([500, 200]);
    limits.length = 0;
    expect(await m.listSessions('u')).toHaveLength(100);
    expect(limits).toEqual([500, 500]);
    limits.length = 0;
    expect(await m.liveSessions('nobody')).toEqual([]);
    expect(limits).toEqual([500]);
  });
});

describe('limits lowered under existing sessions, and sessions that hold only a key', () => {
  test('a session over a lowered SESSION_MAX_DATA_KEYS can still fetch a key and drop keys; only adding data is refused', async () => {
    const store = new CountingStore();
    const clock = new FakeClock();
    const wide = manager(store, clock, settings({ maxDataKeys: 5 }));
    const first = await wide.load(undefined);
    for (const k of ['a', 'b', 'c', 'd']) first.set(k, 1);
    const cookie = cookieFrom((await wide.save(first)).setCookie);
    // The operator lowers the limit; this session already holds more.
    const narrow = manager(store, clock, settings({ maxDataKeys: 2 }));
    const s = await narrow.load(cookie);
    const key = s.getSecurityKey();
    s.delete('a');
    expect((await narrow.save(s)).written).toBe(true);
    const next = await narrow.load(cookie);
    expect(next.validateSecurityKey(key)).toBe(true);
    expect(next.toObject()).toEqual({ b: 1, c: 1, d: 1 });
    await expect(
      (async () => {
        next.set('e', 1);
        await narrow.save(next);
      })(),
    ).rejects.toBeInstanceOf(TooManyKeysError);
    expect((await narrow.load(cookie)).toObject()).toEqual({ b: 1, c: 1, d: 1 });
  });

  test('a reset followed by fetching a key keeps the new session: the key works on the next request', async () => {
    const { m } = setup();
    const { cookie } = await started(m);
    const s = await m.load(cookie);
    s.reset();
    const key = s.getSecurityKey();
    const out = await m.save(s);
    expect(out.written).toBe(true);
    const next = await m.load(cookieFrom(out.setCookie));
    expect(next.isNew).toBe(false);
    expect(next.toObject()).toEqual({});
    expect(next.validateSecurityKey(key)).toBe(true);
  });
});
