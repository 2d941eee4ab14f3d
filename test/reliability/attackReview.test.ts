/**
 * Issue 12: the outside attack review's findings, each reproduced first and then fixed. API tests run
 * the real module that registers the functions (functions-framework's test server) on the Firestore
 * emulator; the memory measurement runs sessionApi as a functions-framework child process.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { digest } from '../../lib/core/ids';
import { MalformedKillMessageError, parseKillMessageData } from '../../lib/jobs/killMessage';
import { setLogSink } from '../../lib/setup/log';
import { MemorySessionStore } from '../../lib/store/memoryStore';
import { AUDIENCE, cookieOf, newSession, startApi, type ApiHarness } from '../support/api';
import { cookieFrom, countRpcs, datastore, datastoreStore, FakeClock, manager, settings, uniqueNamespace } from '../support/fixtures';
import { ensureBuilt, startFunction } from '../support/functionsFramework';
import { rssOf } from './support';

const COOKIE = '__Host-viur_cookie_session-test';
const MiB = 1024 * 1024;

let api: ApiHarness;
const logs: string[] = [];

beforeAll(async () => {
  api = await startApi();
  setLogSink((line) => logs.push(line));
});
afterAll(async () => {
  setLogSink(null);
  const { closePublishers } = await import('../../lib/jobs/killPublisher');
  await closePublishers();
});
beforeEach(() => {
  api.use();
});

const http = () => request(api.server);
const bearer = () => `Bearer ${api.admin.mint(AUDIENCE)}`;
const idOf = (cookie: string) => cookie.slice(cookie.indexOf('=') + 1);
const setCookies = (res: request.Response) => (res.headers['set-cookie'] as unknown as string[] | undefined) ?? [];

interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Bytes of the body the client managed to send before the answer or the connection ended. */
  sent: number;
}

/**
 * Sends `total` bytes of body in 64 KiB chunks (chunked unless a Content-Length is given) and
 * resolves with the answer. The server may answer and close before the body is sent; the client
 * stops writing then, as browsers and proxies do.
 */
function rawRequest(url: string, method: string, path: string, headers: Record<string, string>, total: number): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const req = httpRequest({ host: hostname, port, method, path, headers }, (res) => {
      answered = true;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, sent }));
      res.on('error', reject);
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (!answered && sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      if (!answered) req.end();
    };
    pump();
  });
}

async function listening<T>(run: (url: string) => Promise<T>): Promise<T> {
  const address = await new Promise<AddressInfo>((r) => {
    const s = api.server.listen(0, '127.0.0.1', () => r(s.address() as AddressInfo));
  });
  try {
    return await run(`http://127.0.0.1:${address.port}`);
  } finally {
    await new Promise<void>((r) => api.server.close(() => r()));
  }
}

describe('1. a body over the limit, of any type, chunked or not, is refused with 413 without being buffered', () => {
  test.each(['text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x'])(
    'chunked %s over the limit on /healthz and on PATCH /session: 413 too_large, no store call',
    async (type) => {
      const rpc = countRpcs();
      try {
        await listening(async (url) => {
          for (const [method, path] of [
            ['GET', '/healthz'],
            ['POST', '/healthz'],
            ['PATCH', '/session'],
          ] as const) {
            const res = await rawRequest(url, method, path, { 'content-type': type, 'transfer-encoding': 'chunked' }, 2 * MiB);
            expect({ method, path, status: res.status, body: JSON.parse(res.body) }).toEqual({
              method,
              path,
              status: 413,
              body: { error: { code: 'too_large', message: expect.any(String) } },
            });
          }
        });
        expect(rpc.total()).toBe(0);
      } finally {
        rpc.restore();
      }
    },
  );

  test('a Content-Length over the limit is refused before a byte of the body is read, whatever the type', async () => {
    await listening(async (url) => {
      for (const type of ['text/plain', 'application/octet-stream', 'application/json']) {
        const res = await rawRequest(url, 'GET', '/healthz', { 'content-type': type, 'content-length': String(16 * MiB) }, 16 * MiB);
        expect([type, res.status, JSON.parse(res.body).error.code]).toEqual([type, 413, 'too_large']);
        expect(res.sent).toBeLessThan(16 * MiB);
      }
    });
  });

  test('a small body of another type is not parsed: routes that take no body answer as usual, routes that need JSON answer 415', async () => {
    await http().get('/healthz').set('Content-Type', 'text/plain').send('hello').expect(200, { status: 'ok' });
    await http().post('/session/touch').set('Content-Type', 'application/octet-stream').send(Buffer.from('x')).expect(204);
    const { cookie, key } = await newSession(api.server);
    const res = await http().patch('/session').set('Cookie', cookie).set('X-Security-Key', key).type('form').send('a=1').expect(415);
    expect(res.body.error.code).toBe('unsupported_media_type');
  });

  test('64 MiB of chunked text/plain to a functions-framework process: 413, and its memory does not grow with the body', async () => {
    ensureBuilt();
    const fn = await startFunction('sessionApi', 'http', { SESSION_STORE: 'memory', GOOGLE_CLOUD_PROJECT: 'session-test' });
    try {
      await fetch(`${fn.url}/healthz`);
      const before = rssOf(fn.pid);
      const res = await rawRequest(fn.url, 'POST', '/healthz', { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' }, 64 * MiB);
      const after = rssOf(fn.pid);
      // Measured before the fix: 413 never came (405 after reading it all), RSS +180 MiB.
      process.stdout.write(
        `RSS of sessionApi before/after a 64 MiB chunked text/plain body: ${(before / MiB).toFixed(1)} → ${(after / MiB).toFixed(1)} MiB (client sent ${(res.sent / MiB).toFixed(1)} MiB)\n`,
      );
      expect(res.status).toBe(413);
      expect(after - before).toBeLessThan(24 * MiB);
      expect((await fetch(`${fn.url}/healthz`)).status).toBe(200);
    } finally {
      await fn.stop();
    }
  }, 60_000);
});

describe('2. data is one JSON text property; the number of keys is capped', () => {
  test('the stored data is one unindexed string of JSON text', async () => {
    const { cookie, key } = await newSession(api.server);
    await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .send({ 'a.b[0]%': 1, nested: { x: [1, [2]] } })
      .expect(200);
    const ds = datastore();
    const [entity] = await ds.get(ds.key({ namespace: api.runtime.config.namespace, path: ['viur-session', digest(idOf(cookie))] }));
    expect(typeof entity.data).toBe('string');
    expect(JSON.parse(entity.data as string)).toEqual({ 'a.b[0]%': 1, nested: { x: [1, [2]] } });
  });

  test('a session stored in the old shape (embedded entity, percent-encoded names) still loads, and is rewritten in the new shape on its next write', async () => {
    const namespace = uniqueNamespace('legacy');
    api.use({ SESSION_NAMESPACE: namespace });
    const id = 'L'.repeat(43);
    const ds = datastore();
    const key = ds.key({ namespace, path: ['viur-session', digest(id)] });
    const now = Date.now();
    await ds.save({
      key,
      excludeFromIndexes: ['data', 'data.*', 'lastseen', 'staticSecurityKey', 'securityKeys[]'],
      data: {
        data: { language: '"de"', 'a%2Eb%5B0%5D%25': '{"n":[1,2]}' },
        user: 'legacy-user',
        lastseen: now / 1000,
        createdAt: new Date(now),
        expiresAt: new Date(now + 3600_000),
        staticSecurityKey: digest('S'.repeat(43)),
        securityKeys: [],
      },
    });
    const cookie = `${COOKIE}=${id}`;
    await http()
      .get('/session')
      .set('Cookie', cookie)
      .expect(200, { user: 'legacy-user', data: { language: 'de', 'a.b[0]%': { n: [1, 2] } } });
    await http()
      .put('/session/data/x')
      .set('Cookie', cookie)
      .set('Sec-X-ViUR-StaticSKey', 'S'.repeat(43))
      .type('json')
      .send('true')
      .expect(200);
    const [entity] = await ds.get(key);
    expect(JSON.parse(entity.data as string)).toEqual({ language: 'de', 'a.b[0]%': { n: [1, 2] }, x: true });
    await http()
      .get('/session')
      .set('Cookie', cookie)
      .expect(200, { user: 'legacy-user', data: { language: 'de', 'a.b[0]%': { n: [1, 2] }, x: true } });
  });

  test('keys beyond SESSION_MAX_DATA_KEYS: 413 too_many_keys and nothing written', async () => {
    api.use({ SESSION_MAX_DATA_KEYS: '10' });
    const { cookie, key } = await newSession(api.server);
    const first = await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .send(Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, i])))
      .expect(200);
    const next = first.headers['x-security-key'];
    const res = await http().patch('/session').set('Cookie', cookie).set('X-Security-Key', next).send({ a: 1, b: 2 }).expect(413);
    expect(res.body.error.code).toBe('too_many_keys');
    expect(Object.keys((await http().get('/session').set('Cookie', cookie).expect(200)).body.data)).toHaveLength(9);
    // The key was not consumed (nothing was written), and one more key still fits.
    await http().put('/session/data/last').set('Cookie', cookie).set('X-Security-Key', next).type('json').send('1').expect(200);
  });

  test('the default cap holds for the review’s 112,000 tiny keys: refused in one PATCH', async () => {
    const { cookie, key } = await newSession(api.server);
    const body = Object.fromEntries(Array.from({ length: 28_000 }, (_, i) => [`${i}`, 0]));
    const res = await http().patch('/session').set('Cookie', cookie).set('X-Security-Key', key).send(body);
    expect([res.status, res.body.error?.code]).toEqual([413, 'too_many_keys']);
  });
});

describe('3. cookie tossing', () => {
  test('the default cookie name is __Host-viur_cookie_<project id>', async () => {
    const res = await http().get('/session/security-key').expect(200);
    expect(setCookies(res)[0]).toMatch(/^__Host-viur_cookie_session-test=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
  });

  test('with the name twice, the value that names a live session is used, wherever it is; no cookie is cleared because of a duplicate', async () => {
    api.use({ SESSION_COOKIE_NAME: 'sid' });
    const first = await http().get('/session/security-key').expect(200);
    const live = cookieOf(first);
    await http()
      .put('/session/data/cart')
      .set('Cookie', live)
      .set('X-Security-Key', first.body.securityKey)
      .type('json')
      .send('[1]')
      .expect(200);
    for (const header of [`sid=junk; ${live}`, `sid=${'J'.repeat(43)}; ${live}`, `${live}; sid=${'J'.repeat(43)}`]) {
      const res = await http()
        .get('/session')
        .set('Cookie', header)
        .expect(200, { user: null, data: { cart: [1] } });
      expect(setCookies(res)).toEqual([]);
    }
    // Two dead values: a guest session, and still no clearing cookie (it could delete the real one).
    const res = await http()
      .get('/session')
      .set('Cookie', `sid=${'J'.repeat(43)}; sid=${'K'.repeat(43)}`)
      .expect(200, { user: null, data: {} });
    expect(setCookies(res)).toEqual([]);
    // One dead value alone is still cleared.
    const single = await http()
      .get('/session')
      .set('Cookie', `sid=${'J'.repeat(43)}`)
      .expect(200);
    expect(setCookies(single)[0]).toMatch(/^sid=; Max-Age=0/);
  });

  test('duplicates cost a bounded number of lookups: at most 3 well-formed values are looked up; a single cookie costs one', async () => {
    api.use({ SESSION_COOKIE_NAME: 'sid' });
    const { cookie } = await newSession(api.server);
    const rpc = countRpcs();
    try {
      await http().get('/session').set('Cookie', cookie).expect(200);
      expect(rpc.counts).toEqual({ lookup: 1 });
      rpc.reset();
      const many = Array.from({ length: 8 }, (_, i) => `sid=${String.fromCharCode(65 + i).repeat(43)}`).join('; ');
      await http().get('/session').set('Cookie', many).expect(200, { user: null, data: {} });
      expect(rpc.counts.lookup).toBeLessThanOrEqual(3);
    } finally {
      rpc.restore();
    }
  });
});

describe('4. size is measured as stored', () => {
  test('3,000 keys of 250 dots: counted as stored, stored whole, read back (was 500 internal)', async () => {
    const { cookie, key } = await newSession(api.server);
    const body = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`${i}`.padEnd(250, '.'), 1]));
    const res = await http().patch('/session').set('Cookie', cookie).set('X-Security-Key', key).send(body);
    expect([res.status, res.body.error?.code]).toEqual([200, undefined]);
    const back = await http().get('/session').set('Cookie', cookie).expect(200);
    expect(Object.keys(back.body.data)).toHaveLength(3000);
  });

  test('data whose JSON text exceeds SESSION_MAX_DATA_BYTES by one byte is refused with 413; at the limit it is stored', async () => {
    api.use({ SESSION_MAX_DATA_BYTES: '2048' });
    const { cookie, key } = await newSession(api.server);
    // {"a":"…"} is 8 bytes of framing.
    const ok = await http()
      .put('/session/data/a')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .type('json')
      .send(JSON.stringify('x'.repeat(2040)))
      .expect(200);
    const res = await http()
      .put('/session/data/a')
      .set('Cookie', cookie)
      .set('X-Security-Key', ok.headers['x-security-key'])
      .type('json')
      .send(JSON.stringify('x'.repeat(2041)))
      .expect(413);
    expect(res.body.error.code).toBe('too_large');
  });

  test('an entity Datastore refuses as too large is DataTooLargeError (413), not an internal error', async () => {
    const store = datastoreStore(uniqueNamespace('big'));
    const m = manager(store, new FakeClock(Date.now()), settings({ maxDataBytes: 10_000_000 }));
    const s = await m.load(undefined);
    s.set('big', 'x'.repeat(1_100_000));
    await expect(m.save(s)).rejects.toMatchObject({ code: 'too_large', status: 413 });
  });
});

describe('5. user ids with a lone surrogate', () => {
  test('login and POST /sessions/kill answer 400 invalid_user; a kill message with one is malformed', async () => {
    const { cookie } = await newSession(api.server);
    const login = await http()
      .post('/session/login')
      .set('Cookie', cookie)
      .set('Authorization', bearer())
      .type('json')
      .send('{"user":"a\\ud800"}');
    expect([login.status, login.body.error?.code]).toEqual([400, 'invalid_user']);
    expect(setCookies(login)).toEqual([]);
    for (const body of ['{"user":"\\udc00"}', '{"users":["ok","\\ud800x"]}']) {
      const kill = await http().post('/sessions/kill').set('Authorization', bearer()).type('json').send(body);
      expect([kill.status, kill.body.error?.code]).toEqual([400, 'invalid_user']);
    }
    expect(() => parseKillMessageData('{"user":"\\ud800"}')).toThrow(MalformedKillMessageError);
    expect(() => parseKillMessageData('{"users":["\\udfff"]}')).toThrow(MalformedKillMessageError);
  });
});

describe('6. a request carrying a cookie rotated away shortly before gets 409 session_ended and no Set-Cookie', () => {
  async function rotated(how: 'login' | 'logout' | 'reset'): Promise<{ old: string; current: string }> {
    const first = await http().get('/session/security-key').expect(200);
    let old = cookieOf(first);
    let staticKey = first.headers['sec-x-viur-staticskey'];
    await http()
      .put('/session/data/language')
      .set('Cookie', old)
      .set('Sec-X-ViUR-StaticSKey', staticKey)
      .type('json')
      .send('"de"')
      .expect(200);
    if (how === 'logout') {
      const login = await http().post('/session/login').set('Cookie', old).set('Authorization', bearer()).send({ user: 'u6' }).expect(200);
      old = cookieOf(login);
      staticKey = login.headers['sec-x-viur-staticskey'];
    }
    const res =
      how === 'login'
        ? await http().post('/session/login').set('Cookie', old).set('Authorization', bearer()).send({ user: 'u6' }).expect(200)
        : await http().post(`/session/${how}`).set('Cookie', old).set('Sec-X-ViUR-StaticSKey', staticKey).expect(200);
    return { old, current: cookieOf(res) };
  }

  test.each(['login', 'logout', 'reset'] as const)('after %s: reads, key fetches, writes and login with the old cookie', async (how) => {
    const { old, current } = await rotated(how);
    const tries: Array<[string, () => request.Test]> = [
      ['GET /session', () => http().get('/session')],
      ['GET /session/data/language', () => http().get('/session/data/language')],
      ['GET /session/security-key', () => http().get('/session/security-key')],
      ['POST /session/touch', () => http().post('/session/touch')],
      [
        'POST /session/security-key/validate',
        () =>
          http()
            .post('/session/security-key/validate')
            .send({ key: 'A'.repeat(43) }),
      ],
      [
        'POST /session/static-security-key/validate',
        () =>
          http()
            .post('/session/static-security-key/validate')
            .send({ key: 'A'.repeat(43) }),
      ],
      ['POST /session/login', () => http().post('/session/login').set('Authorization', bearer()).send({ user: 'u6' })],
    ];
    for (const [label, send] of tries) {
      const res = await send().set('Cookie', old);
      expect({ label, status: res.status, code: res.body.error?.code, setCookie: setCookies(res) }).toEqual({
        label,
        status: 409,
        code: 'session_ended',
        setCookie: [],
      });
    }
    // The new session is untouched, and the old one was not revived.
    const now = await http().get('/session').set('Cookie', current).expect(200);
    expect(now.body.user).toBe(how === 'login' ? 'u6' : null);
    expect(api.runtime.sessions.isAlive((await api.store.get(digest(idOf(old))))!)).toBe(false);
  });

  test('a read that was in flight during the login does not change the cookie (library: load, login, save)', async () => {
    const m = manager(new MemorySessionStore());
    const s = await m.load(undefined);
    s.set('language', 'de');
    const pre = cookieFrom((await m.save(s)).setCookie);
    const inFlight = await m.load(pre);
    inFlight.markChanged();
    await m.withSession(pre, (x) => x.login('u'));
    await expect(m.save(inFlight)).rejects.toMatchObject({ code: 'session_ended' });
    await expect(m.load(pre)).rejects.toMatchObject({ code: 'session_ended' });
    await expect(m.withSession(pre, (x) => x.getSecurityKey())).rejects.toMatchObject({ code: 'session_ended' });
  });

  test('the tombstone expires with the cleanup and the TTL (expiresAt 90 s after the rotation) and a kill deletes it', async () => {
    const store = new MemorySessionStore();
    const clock = new FakeClock();
    const m = manager(store, clock);
    const s = await m.load(undefined);
    s.set('a', 1);
    const pre = cookieFrom((await m.save(s)).setCookie);
    await m.withSession(pre, (x) => x.login('u'));
    const tomb = (await store.get(digest(idOf(pre))))!;
    expect(tomb.expiresAt).toBe(clock.now() + 90_000);
    expect(tomb.data).toEqual({});
    expect(m.isAlive(tomb)).toBe(false);
    clock.advance(91_000);
    // Past it, the old cookie is an unknown one again (a guest, its cookie cleared).
    const later = await m.load(pre);
    expect(later.isNew).toBe(true);
    expect((await store.findKeys({ kind: 'expired', before: clock.now() }, 10)).keys).toEqual([digest(idOf(pre))]);
    expect((await store.findKeys({ kind: 'user', user: null, createdAtOrBefore: clock.now() }, 10)).keys).toContain(digest(idOf(pre)));
  });
});

describe('7. absolute lifetime', () => {
  test('a session kept busy ends SESSION_ABSOLUTE_LIFETIME_SECONDS after its creation; expiresAt never lies beyond it; login starts a new one', async () => {
    const store = new MemorySessionStore();
    const clock = new FakeClock();
    const m = manager(store, clock, settings({ lifetimeSeconds: 3600, absoluteLifetimeSeconds: 2 * 3600 }));
    const s = await m.load(undefined);
    s.set('a', 1);
    const cookie = cookieFrom((await m.save(s)).setCookie);
    const created = clock.now();
    for (let i = 0; i < 2; i++) {
      clock.advance(50 * 60_000);
      const { session } = await m.withSession(cookie, (x) => x.markChanged());
      expect(session.get('a')).toBe(1);
    }
    const stored = (await store.get(digest(idOf(cookie))))!;
    expect(stored.expiresAt).toBe(created + 2 * 3600_000);
    clock.advance(30 * 60_000);
    expect((await m.load(cookie)).isNew).toBe(true);
    // Login makes a new session with its own creation time.
    const fresh = await m.load(undefined);
    fresh.set('a', 2);
    const c2 = cookieFrom((await m.save(fresh)).setCookie);
    clock.advance(110 * 60_000);
    const { outcome } = await m.withSession(c2, (x) => x.login('u'));
    clock.advance(60 * 60_000 - 1);
    expect((await m.load(cookieFrom(outcome.setCookie))).user).toBe('u');
  });

  test("a persistent cookie's Max-Age is the idle lifetime, and near the absolute limit what is left of it", async () => {
    const clock = new FakeClock();
    const base = settings({ lifetimeSeconds: 3600, absoluteLifetimeSeconds: 2 * 3600 });
    const m = manager(new MemorySessionStore(), clock, { ...base, cookie: { ...base.cookie, persistent: true } });
    const s = await m.load(undefined);
    s.set('a', 1);
    const first = (await m.save(s)).setCookie!;
    expect(first).toMatch(/; Max-Age=3600(;|$)/);
    clock.advance(50 * 60_000);
    await m.withSession(cookieFrom(first), (x) => x.set('b', 2));
    clock.advance(50 * 60_000);
    const { outcome } = await m.withSession(cookieFrom(first), (x) => x.set('b', 3));
    // The same session (same cookie value), 20 minutes before its absolute end.
    expect(cookieFrom(outcome.setCookie)).toBe(cookieFrom(first));
    expect(outcome.setCookie).toMatch(/; Max-Age=1200(;|$)/);
    clock.advance(20 * 60_000 - 1);
    expect((await m.load(cookieFrom(first))).get('a')).toBe(1);
    clock.advance(1);
    expect((await m.load(cookieFrom(first))).isNew).toBe(true);
  });

  test('a session stored before the limit applied (its expiresAt the idle end) is dead by its age all the same', async () => {
    const store = new MemorySessionStore();
    const clock = new FakeClock();
    const m = manager(store, clock, settings({ lifetimeSeconds: 3600, absoluteLifetimeSeconds: 7 * 24 * 3600 }));
    const id = 'O'.repeat(43);
    const now = clock.now();
    await store.update(null, () => ({
      writes: {
        put: [
          {
            key: digest(id),
            session: {
              data: Object.assign(Object.create(null), { a: 1 }),
              user: 'u',
              lastSeen: now,
              createdAt: now - 8 * 24 * 3600_000,
              expiresAt: now + 3600_000,
              staticKeyDigest: 'ab'.repeat(32),
              securityKeyDigests: [],
              userAgent: null,
            },
          },
        ],
        delete: [],
      },
      result: undefined,
    }));
    const s = await m.load(`${COOKIE}=${id}`);
    expect([s.isNew, s.user]).toEqual([true, null]);
  });

  test('0 disables it', async () => {
    const clock = new FakeClock();
    const m = manager(new MemorySessionStore(), clock, settings({ lifetimeSeconds: 3600, absoluteLifetimeSeconds: 0 }));
    const s = await m.load(undefined);
    s.set('a', 1);
    const cookie = cookieFrom((await m.save(s)).setCookie);
    // Eight days, touched every 50 minutes.
    for (let i = 0; i < (8 * 24 * 60) / 50; i++) {
      clock.advance(50 * 60_000);
      await m.withSession(cookie, (x) => x.markChanged());
    }
    expect((await m.load(cookie)).get('a')).toBe(1);
  });
});

describe('8. remoteIp and the scheme-aware same-site check', () => {
  const requestLine = () =>
    logs
      .map((l) => JSON.parse(l) as { httpRequest?: { remoteIp?: string } })
      .reverse()
      .find((l) => l.httpRequest)!;

  test('remoteIp is never the client-chosen leftmost X-Forwarded-For entry', async () => {
    api.use({ SESSION_LOG_REQUESTS: 'all' });
    logs.length = 0;
    await http().get('/healthz').set('X-Forwarded-For', '203.0.113.66, 198.51.100.7').expect(200);
    expect(requestLine().httpRequest!.remoteIp).toMatch(/^(::ffff:)?127\.0\.0\.1$|^::1$/);
    api.use({ K_SERVICE: 'session-api', SESSION_LOG_REQUESTS: 'all' });
    logs.length = 0;
    await http().get('/healthz').set('X-Forwarded-For', '203.0.113.66, 198.51.100.7').expect(200);
    expect(requestLine().httpRequest!.remoteIp).toBe('198.51.100.7');
  });

  test('Origin http://<own host> is refused on the https service; https://<own host> passes; ports count', async () => {
    const first = await http().get('/session/security-key').expect(200);
    const cookie = cookieOf(first);
    const staticKey = first.headers['sec-x-viur-staticskey'];
    const patch = (origin: string, host: string, proto?: string) => {
      let t = http()
        .patch('/session')
        .set('Host', host)
        .set('Origin', origin)
        .set('Cookie', cookie)
        .set('Sec-X-ViUR-StaticSKey', staticKey);
      if (proto) t = t.set('X-Forwarded-Proto', proto);
      return t.send({ a: 1 });
    };
    const refused = await patch('http://sessions.example', 'sessions.example', 'https');
    expect([refused.status, refused.body.error?.code]).toEqual([403, 'cross_site']);
    await patch('https://sessions.example', 'sessions.example', 'https').expect(200);
    await patch('https://sessions.example:443', 'sessions.example', 'https').expect(200);
    expect((await patch('https://sessions.example:8443', 'sessions.example', 'https')).status).toBe(403);
    // Without X-Forwarded-Proto the connection's own scheme (plain HTTP here) counts.
    await patch('http://sessions.example', 'sessions.example').expect(200);
    expect((await patch('https://sessions.example', 'sessions.example')).status).toBe(403);
  });
});

describe('differences to ViUR 3.8', () => {
  test('the static key is accepted in Sec-X-ViUR-StaticSessionKey (ViUR 3.8) as in Sec-X-ViUR-StaticSKey', async () => {
    const first = await http().get('/session/security-key').expect(200);
    const cookie = cookieOf(first);
    await http()
      .put('/session/data/a')
      .set('Cookie', cookie)
      .set('Sec-X-ViUR-StaticSessionKey', first.headers['sec-x-viur-staticskey'])
      .type('json')
      .send('1')
      .expect(200);
  });

  test('a logout that keeps nothing writes no empty guest session: the cookie is cleared, only the short-lived tombstone remains', async () => {
    const namespace = uniqueNamespace('logout');
    api.use({ SESSION_PERSISTENT_FIELDS_ON_LOGOUT: '', SESSION_NAMESPACE: namespace });
    const first = await http().get('/session/security-key').expect(200);
    const login = await http()
      .post('/session/login')
      .set('Cookie', cookieOf(first))
      .set('Authorization', bearer())
      .send({ user: 'u-out' })
      .expect(200);
    const cookie = cookieOf(login);
    // With a one-time key: it is consumed, and no fresh one is handed out (it would need a stored guest session).
    const { body: keys } = await http().get('/session/security-key').set('Cookie', cookie).expect(200);
    const out = await http()
      .post('/session/logout')
      .set('Cookie', cookie)
      .set('X-Security-Key', keys.securityKey)
      .expect(200, { user: null, data: {} });
    expect(setCookies(out)[0]).toMatch(new RegExp(`^${COOKIE}=; Max-Age=0`));
    expect([out.headers['sec-x-viur-staticskey'], out.headers['x-security-key']]).toEqual([undefined, undefined]);
    const ds = datastore();
    const [entities] = await ds.runQuery(ds.createQuery(namespace, 'viur-session'));
    expect(entities.length).toBeGreaterThan(0);
    const alive = entities.filter((e) => e.endedAt === undefined || e.endedAt === null);
    expect(alive).toHaveLength(0);
  });

  test('lastseen is always written as a double, also when the time is a whole number of seconds', async () => {
    const ns = uniqueNamespace('lastseen');
    const store = datastoreStore(ns);
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const m = manager(store, clock);
    const s = await m.load(undefined);
    s.set('a', 1);
    const cookie = cookieFrom((await m.save(s)).setCookie);
    const ds = datastore();
    const [entities] = await ds.runQuery(ds.createQuery(ns, 'viur-session'), { wrapNumbers: true });
    expect(entities.map((e) => (e[ds.KEY] as { name: string }).name)).toEqual([digest(idOf(cookie))]);
    // wrapNumbers wraps integerValue in an Int object; a double stays a plain number.
    expect(typeof entities[0]!.lastseen).toBe('number');
    expect(entities[0]!.lastseen).toBe(clock.now() / 1000);
  });
});
