import { beyondCap, byCapRank, byRecency, deviceHandle, storedUserAgent } from '../../../lib/core/devices';
import { SessionEndedError } from '../../../lib/core/errors';
import { digest } from '../../../lib/core/ids';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import type { SessionManager } from '../../../lib/core/manager';
import { cookieFrom, FakeClock, manager, settings } from '../../support/fixtures';
import { ObservedStore, seed, stored } from '../../support/seed';

/** The library side of the device routes, on the memory store (the contract suite covers both stores). */

async function loginAs(sessions: SessionManager, user: string, userAgent?: string): Promise<{ cookie: string; key: string }> {
  const { outcome, session } = await sessions.withSession(undefined, (s) => s.login(user), { userAgent });
  return { cookie: cookieFrom(outcome.setCookie), key: digest(session.id) };
}

describe('userAgent', () => {
  test('is taken from the request that creates the session, login and reset included, and kept after that', async () => {
    const store = new MemorySessionStore();
    const sessions = manager(store);
    const first = await sessions.withSession(undefined, (s) => s.getSecurityKey(), { userAgent: 'Creator/1' });
    const cookie = cookieFrom(first.outcome.setCookie);
    expect((await store.get(digest(first.session.id)))!.userAgent).toBe('Creator/1');
    await sessions.withSession(cookie, (s) => s.set('a', 1), { userAgent: 'Later/2' });
    expect((await store.get(digest(first.session.id)))!.userAgent).toBe('Creator/1');
    const login = await sessions.withSession(cookie, (s) => s.login('u'), { userAgent: 'Login/3' });
    expect((await store.get(digest(login.session.id)))!.userAgent).toBe('Login/3');
    const loaded = await sessions.load(cookieFrom(login.outcome.setCookie), { userAgent: 'Reset/4' });
    loaded.reset();
    loaded.set('kept', true);
    await sessions.save(loaded);
    expect((await store.get(digest(loaded.id)))!.userAgent).toBe('Reset/4');
    const none = await sessions.withSession(undefined, (s) => s.getSecurityKey());
    expect((await store.get(digest(none.session.id)))!.userAgent).toBeNull();
  });

  test('at most 256 characters, never splitting a character; empty is none', () => {
    expect(storedUserAgent('🌍'.repeat(300))).toBe('🌍'.repeat(256));
    expect(storedUserAgent('x'.repeat(256))).toBe('x'.repeat(256));
    expect(storedUserAgent('')).toBeNull();
    expect(storedUserAgent(undefined)).toBeNull();
  });
});

describe('SessionManager: list, end one, end the others', () => {
  test('listSessions shows only live sessions, most recently seen first, marking the current one', async () => {
    const clock = new FakeClock();
    const store = new MemorySessionStore();
    const sessions = manager(store, clock);
    const old = await loginAs(sessions, 'u', 'Old');
    clock.advance(60_000);
    const mine = await loginAs(sessions, 'u', 'Mine');
    await loginAs(sessions, 'someone-else');
    expect((await sessions.listSessions('u', mine.key)).map((d) => [d.id, d.current, d.userAgent])).toEqual([
      [deviceHandle(mine.key), true, 'Mine'],
      [deviceHandle(old.key), false, 'Old'],
    ]);
    clock.advance(settings().lifetimeSeconds * 1000 - 30_000);
    expect((await sessions.listSessions('u')).map((d) => d.id)).toEqual([deviceHandle(mine.key)]);
  });

  test('a session rotated away (its tombstone) is never listed, ended or counted', async () => {
    const store = new MemorySessionStore();
    const sessions = manager(store, new FakeClock(), settings({ maxSessionsPerUser: 1 }));
    const first = await loginAs(sessions, 'rotating');
    const again = await sessions.withSession(first.cookie, (s) => s.login('rotating'));
    expect((await store.get(first.key))!.endedAt).toBeDefined();
    expect((await sessions.listSessions('rotating')).map((d) => d.id)).toEqual([deviceHandle(digest(again.session.id))]);
    expect(await sessions.endSession('rotating', deviceHandle(first.key))).toBe(false);
    expect(await sessions.endOtherSessions(again.session)).toBe(0);
  });

  test("endSession ends the user's session its handle names; another user's handle or a dead one is false", async () => {
    const clock = new FakeClock();
    const store = new MemorySessionStore();
    const sessions = manager(store, clock);
    const a = await loginAs(sessions, 'a');
    const b = await loginAs(sessions, 'b');
    expect(await sessions.endSession('a', deviceHandle(b.key))).toBe(false);
    expect(await store.get(b.key)).not.toBeNull();
    expect(await sessions.endSession('a', 'junk')).toBe(false);
    expect(await sessions.endSession('a', deviceHandle(a.key))).toBe(true);
    expect(await store.get(a.key)).toBeNull();
    clock.advance(settings().lifetimeSeconds * 1000);
    expect(await sessions.endSession('b', deviceHandle(b.key))).toBe(false);
  });

  test('endOtherSessions keeps the session, ends the rest of its user, in commits of at most 500', async () => {
    const store = new ObservedStore(new MemorySessionStore());
    const clock = new FakeClock();
    const sessions = manager(store, clock);
    const me = await loginAs(sessions, 'busy');
    await seed(
      store,
      Array.from({ length: 600 }, (_, i) => [`busy-${i}`, stored({ user: 'busy', createdAt: clock.t, lastSeen: clock.t })]),
    );
    await seed(store, [['stranger', stored({ user: 'other', createdAt: clock.t })]]);
    const session = await sessions.load(me.cookie);
    expect(await sessions.endOtherSessions(session)).toBe(600);
    expect(store.endSizes).toEqual([500, 100]);
    expect((await sessions.listSessions('busy')).map((d) => d.id)).toEqual([deviceHandle(me.key)]);
    expect(await sessions.listSessions('other')).toHaveLength(1);
    expect(await sessions.endOtherSessions(await sessions.load(undefined))).toBe(0);
  });

  test('withSession({end}) ends 498 others in its own commit and the rest right after; a session of another user ends nothing', async () => {
    const store = new ObservedStore(new MemorySessionStore());
    const clock = new FakeClock();
    const sessions = manager(store, clock);
    const me = await loginAs(sessions, 'many');
    const keys = await seed(
      store,
      Array.from({ length: 600 }, (_, i) => [`many-${i}`, stored({ user: 'many', createdAt: clock.t, lastSeen: clock.t })]),
    );
    await expect(sessions.withSession(me.cookie, (s) => s.set('x', 1), { end: { user: 'not-me', keys } })).rejects.toThrow(
      SessionEndedError,
    );
    expect((await sessions.load(me.cookie)).has('x')).toBe(false);
    expect(await sessions.liveSessions('many')).toHaveLength(601);
    await sessions.withSession(me.cookie, (s) => s.set('x', 1), { end: { user: 'many', keys: [...keys, me.key] } });
    expect(store.commitDeletes.at(-1)).toBe(498);
    expect(store.endSizes).toEqual([102]);
    expect((await sessions.liveSessions('many')).map((s) => s.key)).toEqual([me.key]);
    expect((await sessions.load(me.cookie)).get('x')).toBe(1);
  });

  test('withSession({end}) with a change that writes nothing still ends the others, and leaves its own session as it was', async () => {
    const store = new ObservedStore(new MemorySessionStore());
    const clock = new FakeClock();
    const sessions = manager(store, clock);
    const me = await loginAs(sessions, 'reader');
    const keys = await seed(store, [
      ['reader-1', stored({ user: 'reader', createdAt: clock.t, lastSeen: clock.t })],
      ['reader-2', stored({ user: 'reader', createdAt: clock.t, lastSeen: clock.t })],
    ]);
    const before = await store.get(me.key);
    const { result, outcome } = await sessions.withSession(me.cookie, (s) => s.user, { end: { user: 'reader', keys } });
    expect([result, outcome.written, outcome.setCookie]).toEqual(['reader', false, null]);
    expect(store.commitDeletes.at(-1)).toBe(2);
    expect((await sessions.liveSessions('reader')).map((s) => s.key)).toEqual([me.key]);
    expect(await store.get(me.key)).toEqual(before);
  });

  test('the cap applies to a login saved with save() too', async () => {
    const clock = new FakeClock();
    const store = new MemorySessionStore();
    const sessions = manager(store, clock, settings({ maxSessionsPerUser: 1 }));
    const first = await loginAs(sessions, 'solo');
    clock.advance(1000);
    const s = await sessions.load(undefined);
    s.login('solo');
    await sessions.save(s);
    expect(await store.get(first.key)).toBeNull();
    expect(await store.get(digest(s.id))).not.toBeNull();
  });
});

describe('finding a session by its handle (issue 26, 3)', () => {
  test('findLiveSession reads no listing: one look-up by handle, whatever the number of dead sessions; dead, tombstoned and foreign ones are null', async () => {
    const clock = new FakeClock();
    const inner = new MemorySessionStore();
    const calls: string[] = [];
    const store = new Proxy(inner, {
      get(target, prop) {
        const value = Reflect.get(target, prop) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.push(String(prop));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const sessions = manager(store, clock);
    const me = await loginAs(sessions, 'crowded');
    const other = await loginAs(sessions, 'other');
    await seed(
      inner,
      Array.from({ length: 3000 }, (_, i) => [
        `dead-${i}`,
        stored({ user: 'crowded', createdAt: clock.t - 7200_000, lastSeen: clock.t - 7200_000, expiresAt: clock.t - 3600_000 }),
      ]),
    );
    const idle = await seed(inner, [['idle', stored({ user: 'crowded', createdAt: clock.t, lastSeen: clock.t - 3600_000 })]]);
    calls.length = 0;
    expect(await sessions.findLiveSession('crowded', deviceHandle(me.key))).toEqual({
      key: me.key,
      head: expect.objectContaining({ user: 'crowded' }),
    });
    expect(await sessions.findLiveSession('crowded', deviceHandle(other.key))).toBeNull();
    expect(await sessions.findLiveSession('crowded', deviceHandle('dead-0'))).toBeNull();
    // Stored with a far expiresAt but idle past the lifetime: the manager's own liveness check rules it out.
    expect(await sessions.findLiveSession('crowded', deviceHandle(idle[0]))).toBeNull();
    expect(await sessions.findLiveSession('crowded', 'not-a-handle')).toBeNull();
    expect(calls).toEqual(['findUserSession', 'findUserSession', 'findUserSession', 'findUserSession']);
  });
});

describe('the cap never ends the session its own login created (issue 26)', () => {
  const head = (lastSeen: number, createdAt: number) => ({
    user: 'u',
    lastSeen,
    createdAt,
    expiresAt: lastSeen + 3600_000,
    userAgent: null,
  });

  test('byCapRank: a sign-in counts as use for a minute, so it outranks any session signed in before it; past the minute, last use decides', () => {
    const t = Date.UTC(2026, 0, 1);
    const fresh = { key: 'b', head: head(t, t) };
    const busy = { key: 'a', head: head(t + 59_999, t - 3600_000) };
    expect([busy, fresh].sort(byCapRank).map((s) => s.key)).toEqual(['b', 'a']);
    expect(beyondCap([busy, fresh], 1)).toEqual(['a']);
    // A later sign-in of the same user outranks it (concurrent logins agree on one order).
    const later = { key: 'c', head: head(t + 1, t + 1) };
    expect([fresh, later, busy].sort(byCapRank).map((s) => s.key)).toEqual(['c', 'b', 'a']);
    // A minute after the sign-in, a session used later ranks first.
    const used = { key: 'd', head: head(t + 60_001, t - 3600_000) };
    expect([fresh, used].sort(byCapRank).map((s) => s.key)).toEqual(['d', 'b']);
    // The listing still shows the most recently seen first.
    expect([fresh, busy].sort(byRecency).map((s) => s.key)).toEqual(['a', 'b']);
  });

  test('with a cap of 1, a session used between the login commit and its cap (same millisecond or later) is ended, not the new one', async () => {
    const clock = new FakeClock();
    const inner = new MemorySessionStore();
    let before: (() => Promise<void>) | null = null;
    const store = new Proxy(inner, {
      get(target, prop) {
        const value = Reflect.get(target, prop) as unknown;
        if (typeof value !== 'function') return value;
        if (prop !== 'listUserSessions') return (value as (...a: unknown[]) => unknown).bind(target);
        return async (...args: unknown[]) => {
          const run = before;
          before = null;
          await run?.();
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const sessions = manager(store, clock, settings({ maxSessionsPerUser: 1 }));
    const thief = await loginAs(sessions, 'victim');
    for (const later of [0, 1, 30_000]) {
      clock.advance(10 * 60_000);
      before = async () => {
        clock.advance(later);
        await sessions.withSession(thief.cookie, (s) => s.markChanged());
      };
      const victim = await loginAs(sessions, 'victim');
      expect(await inner.get(victim.key)).not.toBeNull();
      expect(await inner.get(thief.key)).toBeNull();
      // The thief comes back with another stolen session for the next round.
      Object.assign(thief, await loginAs(sessions, 'victim'));
      clock.advance(10 * 60_000);
    }
  });
});
