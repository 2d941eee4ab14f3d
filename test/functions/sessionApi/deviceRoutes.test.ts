import request from 'supertest';
import { byCapRank, deviceHandle } from '../../../lib/core/devices';
import { digest } from '../../../lib/core/ids';
import { setLogSink } from '../../../lib/setup/log';
import type { SessionStore, StorageKey, StoredSession } from '../../../lib/store/sessionStore';
import { AUDIENCE, cookieOf, startApi, type ApiHarness } from '../../support/api';
import { countQueriedEntities, countRpcs, datastore, datastoreStore, type RpcCounts } from '../../support/fixtures';
import { keyOf, seed, stored } from '../../support/seed';

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
  setLogSink(() => {});
});
afterAll(() => setLogSink(null));
beforeEach(() => {
  api.use();
});

const http = () => request(api.server);
const token = () => `Bearer ${api.admin.mint(AUDIENCE)}`;
let counter = 0;
const uniqueUser = (label: string) => `${label}-${Date.now()}-${counter++}`;

interface LoggedIn {
  cookie: string;
  staticKey: string;
  key: StorageKey;
}

async function login(user: string, userAgent = 'Browser/1.0', cookie?: string): Promise<LoggedIn> {
  let req = http().post('/session/login').set('Authorization', token()).set('User-Agent', userAgent);
  if (cookie) req = req.set('Cookie', cookie);
  const res = await req.send({ user }).expect(200);
  const c = cookieOf(res);
  return { cookie: c, staticKey: res.headers['sec-x-viur-staticskey'], key: digest(c.split('=')[1]) };
}

const devices = async (s: LoggedIn) =>
  (await http().get('/session/devices').set('Cookie', s.cookie).expect(200)).body.devices as Array<Record<string, unknown>>;
const alive = async (s: LoggedIn) => (await http().get('/session').set('Cookie', s.cookie).expect(200)).body.user as string | null;
const endDevice = (s: LoggedIn, id: string) =>
  http().delete(`/session/devices/${id}`).set('Cookie', s.cookie).set('Sec-X-ViUR-StaticSKey', s.staticKey);
const logoutOthers = (s: LoggedIn) =>
  http().post('/session/devices/logout-others').set('Cookie', s.cookie).set('Sec-X-ViUR-StaticSKey', s.staticKey);

/** Sessions seeded straight into the store for `user`, seen `agoMs` before now. */
async function seedSessions(user: string, count: number, overrides: Partial<StoredSession> = {}, agoMs = 1000): Promise<StorageKey[]> {
  const t = Date.now() - agoMs;
  const label = uniqueUser('seed');
  return seed(
    api.store,
    Array.from(
      { length: count },
      (_, i) =>
        [`${label}-${i}`, stored({ user, lastSeen: t - i, createdAt: t - i - 10_000, expiresAt: t + 3600_000, ...overrides })] as [
          string,
          StoredSession,
        ],
    ),
  );
}

describe('GET /session/devices', () => {
  test("lists the live sessions of the cookie's user, most recently seen first, with the User-Agent of the request that created each", async () => {
    const user = uniqueUser('lister');
    const phone = await login(user, 'Phone/2.0');
    const laptop = await login(user, 'Laptop/3.0');
    const other = await login(uniqueUser('someone-else'));
    // A later request with another User-Agent does not change what was stored.
    await http().post('/session/touch').set('Cookie', phone.cookie).set('User-Agent', 'Changed/9').expect(204);
    const list = await devices(laptop);
    expect(list).toEqual([
      { id: deviceHandle(phone.key), current: false, createdAt: expect.any(String), lastSeen: expect.any(String), userAgent: 'Phone/2.0' },
      { id: deviceHandle(laptop.key), current: true, createdAt: expect.any(String), lastSeen: expect.any(String), userAgent: 'Laptop/3.0' },
    ]);
    for (const d of list) {
      expect(new Date(d.lastSeen as string).toISOString()).toBe(d.lastSeen);
      expect(new Date(d.createdAt as string).toISOString()).toBe(d.createdAt);
    }
    expect(Date.parse(list[0].lastSeen as string)).toBeGreaterThanOrEqual(Date.parse(list[1].lastSeen as string));
    expect((await devices(other)).map((d) => d.id)).toEqual([deviceHandle(other.key)]);
  });

  test('a guest sees an empty list, with or without a session', async () => {
    await http().get('/session/devices').expect(200, { devices: [] });
    const res = await http().get('/session/security-key').expect(200);
    await http().get('/session/devices').set('Cookie', cookieOf(res)).expect(200, { devices: [] });
  });

  test('idle-expired, absolute-expired and past-expiresAt sessions are never listed; a missing User-Agent is null; a long one is cut to 256 characters', async () => {
    const user = uniqueUser('expiry');
    const long = 'L'.repeat(300);
    const me = await login(user, long);
    await seedSessions(user, 1, {}, 2 * 3600_000); // seen two hours ago: past the one-hour idle lifetime
    await seedSessions(user, 1, { expiresAt: Date.now() - 1000 });
    await seedSessions(user, 1, { createdAt: Date.now() - 8 * 86400_000 }); // past the 7-day absolute lifetime, though seen just now
    const [fresh] = await seedSessions(user, 1, { userAgent: null });
    const list = await devices(me);
    expect(list.map((d) => d.id).sort()).toEqual([deviceHandle(me.key), deviceHandle(fresh)].sort());
    expect(list.find((d) => d.current)!.userAgent).toBe('L'.repeat(256));
    expect(list.find((d) => !d.current)!.userAgent).toBeNull();
  });

  // A listing of a user's sessions is two queries sent together: the one on userExpiry, and the one
  // that finds sessions written before userExpiry existed (docs/storage.md#queries-and-indexes).
  test('at most 100 are listed, the most recently seen; the list costs one lookup and one listing (two queries sent together)', async () => {
    const user = uniqueUser('many');
    const me = await login(user);
    await seedSessions(user, 120);
    const rpcs = countRpcs();
    try {
      const list = await devices(me);
      expect(rpcs.counts).toEqual({ lookup: 1, runQuery: 2 });
      expect(list).toHaveLength(100);
      expect(list[0].current).toBe(true);
      const seen = list.map((d) => Date.parse(d.lastSeen as string));
      expect(seen).toEqual([...seen].sort((a, b) => b - a));
    } finally {
      rpcs.restore();
    }
  });
});

describe('handles', () => {
  test('a handle is no session id: sent as the cookie it names nothing and gives a fresh guest session', async () => {
    const me = await login(uniqueUser('handle'));
    const [mine] = await devices(me);
    const id = mine.id as string;
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(me.cookie).not.toContain(id);
    expect(id).not.toBe(me.key);
    const cookieName = me.cookie.split('=')[0];
    await http().get('/session').set('Cookie', `${cookieName}=${id}`).expect(200, { user: null, data: {} });
    const res = await http().get('/session/security-key').set('Cookie', `${cookieName}=${id}`).expect(200);
    expect(cookieOf(res)).not.toBe(`${cookieName}=${id}`);
    await http().get('/session/devices').set('Cookie', `${cookieName}=${id}`).expect(200, { devices: [] });
    // Stable while the session lives.
    expect((await devices(me))[0].id).toBe(id);
  });
});

describe('DELETE /session/devices/{id}', () => {
  test('ends that session of the same user; the key is checked and replaced in the same commit', async () => {
    const user = uniqueUser('ender');
    const me = await login(user);
    const phone = await login(user, 'Phone');
    const keyRes = await http().get('/session/security-key').set('Cookie', me.cookie).expect(200);
    const res = await http()
      .delete(`/session/devices/${deviceHandle(phone.key)}`)
      .set('Cookie', me.cookie)
      .set('X-Security-Key', keyRes.body.securityKey)
      .expect(204);
    expect(res.headers['x-security-key']).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await alive(phone)).toBeNull();
    expect(await alive(me)).toBe(user);
    expect((await devices(me)).map((d) => d.id)).toEqual([deviceHandle(me.key)]);
    // Ended once: the same handle is now unknown.
    await endDevice(me, deviceHandle(phone.key)).expect(404);
  });

  test("another user's session, an expired one and a made-up id all answer the same 404, and nothing ends", async () => {
    const owner = uniqueUser('owner');
    const me = await login(owner);
    const victim = await login(uniqueUser('victim'));
    const [expired] = await seedSessions(owner, 1, {}, 2 * 3600_000);
    const answers = [];
    for (const id of [
      deviceHandle(victim.key),
      deviceHandle(expired),
      'A'.repeat(22),
      'not-a-handle',
      victim.cookie.split('=')[1],
      victim.key,
    ]) {
      const res = await endDevice(me, encodeURIComponent(id));
      answers.push([res.status, res.body]);
    }
    for (const a of answers) expect(a).toEqual([404, { error: { code: 'not_found', message: 'no such session of this user' } }]);
    expect(await alive(victim)).not.toBeNull();
    expect(await api.store.get(expired)).not.toBeNull();
  });

  test('a session stored before handles were (no handle property) is found through the live sessions and ended', async () => {
    const user = uniqueUser('legacy');
    const me = await login(user);
    const ds = datastore();
    const key = keyOf(uniqueUser('legacy-session'));
    const now = Date.now();
    await ds.save({
      key: ds.key({ namespace: api.runtime.config.namespace, path: ['viur-session', key] }),
      data: {
        data: '{}',
        user,
        lastseen: ds.double(now / 1000),
        createdAt: new Date(now),
        expiresAt: new Date(now + 3600_000),
        staticSecurityKey: 'ab'.repeat(32),
        securityKeys: [],
        userAgent: 'Old/1',
      },
      excludeFromIndexes: ['data', 'lastseen', 'staticSecurityKey', 'securityKeys[]', 'userAgent'],
    });
    expect((await devices(me)).map((d) => d.id)).toContain(deviceHandle(key));
    const { rpcs } = await measured(() => endDevice(me, deviceHandle(key)).expect(204));
    expect(rpcs).toEqual({ lookup: 2, runQuery: 3, beginTransaction: 1, commit: 1 });
    expect(await api.store.get(key)).toBeNull();
  });

  test("the current session's own id is 400 current_session (logout is for that)", async () => {
    const me = await login(uniqueUser('self'));
    const res = await endDevice(me, deviceHandle(me.key)).expect(400);
    expect(res.body.error.code).toBe('current_session');
    expect(await alive(me)).not.toBeNull();
  });

  test('a guest gets 404 for any id', async () => {
    const first = await http().get('/session/security-key').expect(200);
    const victim = await login(uniqueUser('guest-target'));
    const res = await http()
      .delete(`/session/devices/${deviceHandle(victim.key)}`)
      .set('Cookie', cookieOf(first))
      .set('X-Security-Key', first.body.securityKey)
      .expect(404);
    expect(res.body.error.code).toBe('not_found');
    expect(await alive(victim)).not.toBeNull();
  });

  test('without a CSRF key, or cross-site, it is refused and nothing ends', async () => {
    const user = uniqueUser('csrf');
    const me = await login(user);
    const phone = await login(user);
    const id = deviceHandle(phone.key);
    expect((await http().delete(`/session/devices/${id}`).set('Cookie', me.cookie).expect(403)).body.error.code).toBe('csrf');
    expect(
      (await http().delete(`/session/devices/${id}`).set('Cookie', me.cookie).set('X-Security-Key', 'A'.repeat(43)).expect(403)).body.error
        .code,
    ).toBe('csrf');
    expect((await endDevice(me, id).set('Origin', 'https://evil.example').expect(403)).body.error.code).toBe('cross_site');
    expect((await endDevice(me, id).set('Sec-Fetch-Site', 'cross-site').expect(403)).body.error.code).toBe('cross_site');
    expect(await alive(phone)).toBe(user);
  });
});

describe('POST /session/devices/logout-others', () => {
  test('ends every other session of the user; the current one survives with its cookie unchanged; other users are untouched', async () => {
    const user = uniqueUser('everywhere');
    const a = await login(user, 'A');
    const b = await login(user, 'B');
    const me = await login(user, 'Me');
    const stranger = await login(uniqueUser('stranger'));
    const res = await logoutOthers(me).expect(200, { ended: 2 });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(await alive(a)).toBeNull();
    expect(await alive(b)).toBeNull();
    expect(await alive(me)).toBe(user);
    expect(await alive(stranger)).not.toBeNull();
    await logoutOthers(me).expect(200, { ended: 0 });
  });

  test('for a user with 50 sessions: one lookup, one listing, one transaction; dead sessions are not counted', async () => {
    const user = uniqueUser('fifty');
    const me = await login(user);
    const others = await seedSessions(user, 49);
    await seedSessions(user, 3, {}, 2 * 3600_000);
    const rpcs = countRpcs();
    try {
      await logoutOthers(me).expect(200, { ended: 49 });
      // The emulator store opens transactions with a separate beginTransaction (production: the lookup opens it).
      expect(rpcs.counts).toEqual({ lookup: 2, runQuery: 2, beginTransaction: 1, commit: 1 });
    } finally {
      rpcs.restore();
    }
    expect(await Promise.all(others.map((k) => api.store.get(k)))).toEqual(others.map(() => null));
    expect(await alive(me)).toBe(user);
  });

  test('a guest ends nothing; without a key or cross-site it is refused and nothing ends', async () => {
    const first = await http().get('/session/security-key').expect(200);
    await http()
      .post('/session/devices/logout-others')
      .set('Cookie', cookieOf(first))
      .set('X-Security-Key', first.body.securityKey)
      .expect(200, { ended: 0 });
    const user = uniqueUser('csrf-others');
    const other = await login(user);
    const me = await login(user);
    expect((await http().post('/session/devices/logout-others').set('Cookie', me.cookie).expect(403)).body.error.code).toBe('csrf');
    expect((await logoutOthers(me).set('Origin', 'https://evil.example').expect(403)).body.error.code).toBe('cross_site');
    expect(await alive(other)).toBe(user);
  });
});

describe('privileged: /users/{user}/sessions', () => {
  test('GET lists a user\'s live sessions (percent-encoded id) without "current"; DELETE ends one, then 404', async () => {
    const user = `${uniqueUser('priv')}/with slash+ü`;
    const s1 = await login(user, 'One');
    const s2 = await login(user, 'Two');
    const path = `/users/${encodeURIComponent(user)}/sessions`;
    const list = (await http().get(path).set('Authorization', token()).expect(200)).body;
    expect(list).toEqual({
      sessions: expect.arrayContaining([
        { id: deviceHandle(s1.key), createdAt: expect.any(String), lastSeen: expect.any(String), userAgent: 'One' },
        { id: deviceHandle(s2.key), createdAt: expect.any(String), lastSeen: expect.any(String), userAgent: 'Two' },
      ]),
    });
    expect(list.sessions).toHaveLength(2);
    await http()
      .delete(`${path}/${deviceHandle(s1.key)}`)
      .set('Authorization', token())
      .expect(204);
    expect(await alive(s1)).toBeNull();
    expect(await alive(s2)).toBe(user);
    const again = await http()
      .delete(`${path}/${deviceHandle(s1.key)}`)
      .set('Authorization', token())
      .expect(404);
    expect(again.body.error.code).toBe('not_found');
    // Another user's path cannot end it either.
    await http()
      .delete(`/users/${encodeURIComponent(uniqueUser('wrong'))}/sessions/${deviceHandle(s2.key)}`)
      .set('Authorization', token())
      .expect(404);
    expect(await alive(s2)).toBe(user);
    await http()
      .get(`/users/${encodeURIComponent(uniqueUser('nobody'))}/sessions`)
      .set('Authorization', token())
      .expect(200, { sessions: [] });
  });

  test('needs the admin token; __guest__ and bad encodings are 400', async () => {
    const user = uniqueUser('locked');
    const s = await login(user);
    expect((await http().get(`/users/${user}/sessions`).expect(401)).body.error.code).toBe('unauthenticated');
    expect(
      (
        await http()
          .delete(`/users/${user}/sessions/${deviceHandle(s.key)}`)
          .set('Cookie', s.cookie)
          .expect(401)
      ).body.error.code,
    ).toBe('unauthenticated');
    expect(await alive(s)).toBe(user);
    expect((await http().get('/users/__guest__/sessions').set('Authorization', token()).expect(400)).body.error.code).toBe('invalid_user');
    expect((await http().get('/users/%E0%A4%A/sessions').set('Authorization', token()).expect(400)).body.error.code).toBe('bad_request');
  });
});

/** Records the last session each insert wrote, so a test can rank sessions that were ended since. */
class RecordingStore implements SessionStore {
  readonly written = new Map<StorageKey, StoredSession>();
  constructor(private readonly inner: SessionStore) {}
  get: SessionStore['get'] = (k) => this.inner.get(k);
  findKeys: SessionStore['findKeys'] = (s, l, c) => this.inner.findKeys(s, l, c);
  listUserSessions: SessionStore['listUserSessions'] = (u, t, l, c) => this.inner.listUserSessions(u, t, l, c);
  findUserSession: SessionStore['findUserSession'] = (u, h, t) => this.inner.findUserSession(u, h, t);
  deleteMany: SessionStore['deleteMany'] = (k) => this.inner.deleteMany(k);
  endSessions: SessionStore['endSessions'] = (k) => this.inner.endSessions(k);
  update: SessionStore['update'] = async (key, decide) => {
    let puts: Array<{ key: StorageKey; session: StoredSession }> = [];
    const result = await this.inner.update(key, (current) => {
      const d = decide(current);
      puts = d.writes?.put ?? [];
      return d;
    });
    for (const p of puts) this.written.set(p.key, p.session);
    return result;
  };
}

describe('SESSION_MAX_SESSIONS_PER_USER', () => {
  test('after a login, the sessions beyond the cap end, least recently used first; the new one survives', async () => {
    api.use({ SESSION_MAX_SESSIONS_PER_USER: '2' });
    const user = uniqueUser('capped');
    const now = Date.now();
    // Both signed in ten minutes ago; one used a minute ago, the other five minutes ago.
    const [recent] = await seedSessions(user, 1, { createdAt: now - 600_000 }, 60_000);
    const [idle] = await seedSessions(user, 1, { createdAt: now - 600_000 }, 300_000);
    const third = await login(user);
    expect(await api.store.get(idle)).toBeNull();
    expect(await api.store.get(recent)).not.toBeNull();
    expect(await alive(third)).toBe(user);
    // A sign-in counts as use for a minute after it: the next login ends `recent`, used a minute ago.
    const fourth = await login(user);
    expect(await api.store.get(recent)).toBeNull();
    expect((await devices(fourth)).map((d) => d.id).sort()).toEqual([deviceHandle(third.key), deviceHandle(fourth.key)].sort());
    // Other users and guests are not counted.
    await login(uniqueUser('neighbour'));
    expect(await alive(third)).toBe(user);
  });

  test('a cap of 1: a login from the same cookie replaces the session, a login elsewhere ends the old one', async () => {
    api.use({ SESSION_MAX_SESSIONS_PER_USER: '1' });
    const user = uniqueUser('single');
    const a = await login(user);
    const b = await login(user, 'Other', a.cookie);
    // Rotated away by the login: its tombstone answers 409 for a while.
    await http().get('/session').set('Cookie', a.cookie).expect(409);
    const c = await login(user);
    expect(await alive(b)).toBeNull();
    expect(await alive(c)).toBe(user);
  });

  test("concurrent logins of one user: after all finish exactly the cap remain, and they are the first by the cap's order (byCapRank)", async () => {
    const store = new RecordingStore(datastoreStore(api.runtime.config.namespace));
    api.use({ SESSION_MAX_SESSIONS_PER_USER: '3' }, store);
    const user = uniqueUser('race');
    const logins = await Promise.all(Array.from({ length: 8 }, (_, i) => login(user, `Racer/${i}`)));
    const survivors = (await Promise.all(logins.map(async (s) => ((await api.store.get(s.key)) ? s.key : null)))).filter(
      (k): k is string => k !== null,
    );
    const ranked = logins.map((s) => ({ key: s.key, head: store.written.get(s.key)! })).sort(byCapRank);
    expect(survivors.sort()).toEqual(
      ranked
        .slice(0, 3)
        .map((s) => s.key)
        .sort(),
    );
    const listed = (
      await http()
        .get(`/users/${encodeURIComponent(user)}/sessions`)
        .set('Authorization', token())
        .expect(200)
    ).body.sessions;
    expect(listed).toHaveLength(3);
  });

  test('round trips of a login: none extra without a cap; one listing with it, plus one commit when over', async () => {
    const measure = async (user: string) => {
      const rpcs = countRpcs();
      try {
        await login(user);
        return { ...rpcs.counts };
      } finally {
        rpcs.restore();
      }
    };
    api.use();
    const free = uniqueUser('free');
    await login(free);
    expect(await measure(free)).toEqual({ commit: 1 });
    api.use({ SESSION_MAX_SESSIONS_PER_USER: '2' });
    const capped = uniqueUser('cost');
    await login(capped);
    expect(await measure(capped)).toEqual({ commit: 1, runQuery: 2 });
    expect(await measure(capped)).toEqual({ commit: 2, runQuery: 2 });
  });
});

/** Runs `run` counting the Datastore round trips it makes and the entities its queries read. */
async function measured<T>(run: () => Promise<T>): Promise<{ result: T; rpcs: RpcCounts; read: number }> {
  const rpcs = countRpcs();
  const entities = countQueriedEntities();
  try {
    const result = await run();
    return { result, rpcs: { ...rpcs.counts }, read: entities.count };
  } finally {
    rpcs.restore();
    entities.restore();
  }
}

/**
 * Issue 26, finding 3: ending one device read every stored session of the user (up to 20,000, in
 * 40 queries, dead ones included) before it looked for the handle; so did the privileged end,
 * logout-others and every capped login. One user here holds 2,000 idle-expired sessions and 500
 * old tombstones (what piles up between two nightly cleanups) next to a few live ones.
 */
describe('a user with thousands of stored sessions, nearly all dead (issue 26, 3)', () => {
  const DEAD = 2000;
  const TOMBSTONES = 500;
  const LIVE = 20;
  const user = uniqueUser('crowded');
  let me: LoggedIn;
  let live: StorageKey[];
  let dead: StorageKey[];

  beforeAll(async () => {
    api.use();
    me = await login(user);
    const now = Date.now();
    dead = await seedSessions(user, DEAD, { expiresAt: now - 60_000 }, 2 * 3600_000);
    await seedSessions(user, TOMBSTONES, { endedAt: now - 3600_000, expiresAt: now - 3600_000 + 90_000 }, 2 * 3600_000);
    live = await seedSessions(user, LIVE);
  });

  test('DELETE /session/devices/{id}: one lookup, one query, one transaction; the query reads the target alone', async () => {
    const target = live[0];
    const { rpcs, read } = await measured(() => endDevice(me, deviceHandle(target)).expect(204));
    // The emulator store opens transactions with a separate beginTransaction (production: the lookup opens it).
    expect(rpcs).toEqual({ lookup: 2, runQuery: 1, beginTransaction: 1, commit: 1 });
    expect(read).toBe(1);
    expect(await api.store.get(target)).toBeNull();
  });

  test("an unknown, a dead or another user's handle: the same 404 at a bounded cost, reading no dead session but the one named", async () => {
    const stranger = await login(uniqueUser('stranger'));
    const cases: Array<[string, string, number, number]> = [
      // The handle's query finds nothing; then (for sessions stored before handles were) the live sessions within the listing's bound.
      ['unknown', 'A'.repeat(22), 3, LIVE + 2],
      // The handle's query reads that one session, and that is all.
      ['dead', deviceHandle(dead[0]), 1, 1],
      ["another user's", deviceHandle(stranger.key), 1, 1],
    ];
    for (const [what, id, queries, maxRead] of cases) {
      const { result, rpcs, read } = await measured(() => endDevice(me, id));
      expect([what, result.status, result.body]).toEqual([
        what,
        404,
        { error: { code: 'not_found', message: 'no such session of this user' } },
      ]);
      // With the static key nothing is written: the transaction is rolled back.
      expect([what, rpcs]).toEqual([what, { lookup: 2, runQuery: queries, beginTransaction: 1, rollback: 1 }]);
      expect(read).toBeLessThanOrEqual(maxRead);
    }
    expect(await api.store.get(dead[0])).not.toBeNull();
    expect(await alive(stranger)).not.toBeNull();
  });

  test('a refused DELETE spends its one-time key: replayed, it is refused by the CSRF check (and a fresh key comes back)', async () => {
    const key = (await http().get('/session/security-key').set('Cookie', me.cookie).expect(200)).body.securityKey as string;
    const send = () =>
      http()
        .delete(`/session/devices/${'B'.repeat(22)}`)
        .set('Cookie', me.cookie)
        .set('X-Security-Key', key);
    const first = await send().expect(404);
    expect(first.body.error.code).toBe('not_found');
    expect(first.headers['x-security-key']).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const again = await send().expect(403);
    expect(again.body.error.code).toBe('csrf');
    // The same for the current session's own handle (400).
    const own = (await http().get('/session/security-key').set('Cookie', me.cookie).expect(200)).body.securityKey as string;
    const self = () =>
      http()
        .delete(`/session/devices/${deviceHandle(me.key)}`)
        .set('Cookie', me.cookie)
        .set('X-Security-Key', own);
    expect((await self().expect(400)).body.error.code).toBe('current_session');
    expect((await self().expect(403)).body.error.code).toBe('csrf');
    expect(await alive(me)).toBe(user);
  });

  test('privileged DELETE /users/{user}/sessions/{id}: one query and one commit; an unknown handle one listing more', async () => {
    const path = `/users/${encodeURIComponent(user)}/sessions`;
    const target = live[1];
    const ended = await measured(() =>
      http()
        .delete(`${path}/${deviceHandle(target)}`)
        .set('Authorization', token())
        .expect(204),
    );
    expect(ended.rpcs).toEqual({ runQuery: 1, commit: 1 });
    expect(ended.read).toBe(1);
    expect(await api.store.get(target)).toBeNull();
    const unknown = await measured(() =>
      http()
        .delete(`${path}/${'A'.repeat(22)}`)
        .set('Authorization', token())
        .expect(404),
    );
    expect(unknown.rpcs).toEqual({ runQuery: 3 });
    expect(unknown.read).toBeLessThanOrEqual(LIVE + 2);
    const gone = await measured(() =>
      http()
        .delete(`${path}/${deviceHandle(dead[1])}`)
        .set('Authorization', token())
        .expect(404),
    );
    expect(gone.rpcs).toEqual({ runQuery: 1 });
    expect(gone.read).toBe(1);
  });

  test('a login under SESSION_MAX_SESSIONS_PER_USER: one listing (of live sessions only) and one commit', async () => {
    api.use({ SESSION_MAX_SESSIONS_PER_USER: '100' });
    const { rpcs, read } = await measured(() => login(user));
    expect(rpcs).toEqual({ commit: 1, runQuery: 2 });
    expect(read).toBeLessThanOrEqual(LIVE + 2);
  });

  test('POST /session/devices/logout-others: one lookup, one listing, one transaction; only live sessions are read', async () => {
    const left = LIVE - 2 + 1; // the seeded live ones not ended above, and the capped login's
    const { result, rpcs, read } = await measured(() => logoutOthers(me).expect(200));
    expect(result.body).toEqual({ ended: left });
    expect(rpcs).toEqual({ lookup: 2, runQuery: 2, beginTransaction: 1, commit: 1 });
    expect(read).toBeLessThanOrEqual(left + 1);
    expect(await alive(me)).toBe(user);
  });
});

describe('the cap and a session used at the same moment (issue 26, the cap)', () => {
  /** The runtime's store, with a hook run before each listing of a user's sessions (the cap's query). */
  function hooked(before: () => Promise<void>): SessionStore {
    const inner = datastoreStore(api.runtime.config.namespace);
    return new Proxy(inner, {
      get(target, prop) {
        if (prop === 'listUserSessions') {
          return async (...args: Parameters<SessionStore['listUserSessions']>) => {
            await before();
            return target.listUserSessions(...args);
          };
        }
        const value = Reflect.get(target, prop) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  test('a login never ends its own new session, even when another session of the user is refreshed between its commit and its cap', async () => {
    const user = uniqueUser('stolen');
    let refresh: (() => Promise<void>) | null = null;
    const store = hooked(async () => {
      const run = refresh;
      refresh = null;
      await run?.();
    });
    api.use({ SESSION_MAX_SESSIONS_PER_USER: '1' }, store);
    const thief = await login(user, 'Thief');
    // The thief's request commits after the victim's login was written and before its cap looks:
    // its lastSeen is later than the new session's.
    refresh = () =>
      store.update(thief.key, (current) => {
        const t = Date.now() + 5;
        return {
          writes: { put: [{ key: thief.key, session: { ...current!, lastSeen: t, expiresAt: t + 3600_000 } }], delete: [] },
          result: undefined,
        };
      });
    const victim = await login(user, 'Victim');
    expect(refresh).toBeNull();
    expect(await alive(victim)).toBe(user);
    expect(await alive(thief)).toBeNull();
  });

  test('a thief keeping a stolen session busy: ten logins of the victim each keep their session (cap 1)', async () => {
    api.use({ SESSION_MAX_SESSIONS_PER_USER: '1' });
    const user = uniqueUser('busy');
    const survived: boolean[] = [];
    for (let round = 0; round < 10; round++) {
      const thief = await login(user, 'Thief');
      let stop = false;
      const busy = (async () => {
        for (let i = 0; i < 500 && !stop; i++) await http().post('/session/touch').set('Cookie', thief.cookie);
      })();
      await new Promise((r) => setTimeout(r, 20));
      const victim = await login(user, 'Victim');
      stop = true;
      await busy;
      survived.push((await alive(victim)) === user);
    }
    expect(survived).toEqual(Array.from({ length: 10 }, () => true));
  });
});
