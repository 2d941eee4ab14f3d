import { createHmac, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Datastore } from '@google-cloud/datastore';
import { PubSub } from '@google-cloud/pubsub';
import request from 'supertest';
import { signJwt } from '../../../scripts/localAdmin';
import { DatastoreSessionStore } from '../../../lib/store/datastoreStore';
import { digest } from '../../../lib/core/ids';
import { setLogSink } from '../../../lib/setup/log';
import { ADMIN_EMAIL, AUDIENCE, cookieOf, newSession, startApi, type ApiHarness } from '../../support/api';
import { countRpcs, uniqueNamespace } from '../../support/fixtures';
import { freePort } from '../../../scripts/emulators';

let api: ApiHarness;
const logs: string[] = [];

beforeAll(async () => {
  api = await startApi({ SESSION_PERSISTENT_FIELDS_ON_LOGIN: 'language', SESSION_KILL_TOPIC: `kill-${uniqueNamespace('t')}` });
  setLogSink((line) => logs.push(line));
});
afterAll(async () => {
  setLogSink(null);
  const { closePublishers } = await import('../../../lib/jobs/killPublisher');
  await closePublishers();
});
beforeEach(() => {
  api.use();
});

const http = () => request(api.server);
const bearer = (token: string) => `Bearer ${token}`;

describe('reading', () => {
  test('GET /healthz answers', async () => {
    await http().get('/healthz').expect(200, { status: 'ok' });
  });

  test('GET /session on no cookie is an empty guest session and sets no cookie', async () => {
    const res = await http().get('/session').expect(200, { user: null, data: {} });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers['cache-control']).toBe('no-store');
  });

  test('GET /session/security-key starts a session with an HttpOnly cookie', async () => {
    const res = await http().get('/session/security-key').expect(200);
    expect(res.body.securityKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.headers['set-cookie'][0]).toMatch(
      /^__Host-viur_cookie_session-test=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    );
    expect(res.headers['sec-x-viur-staticskey']).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  test('?count=N hands out several keys at once, bounded', async () => {
    const res = await http().get('/session/security-key?count=5').expect(200);
    expect(res.body.securityKeys).toHaveLength(5);
    for (const bad of ['0', '17', 'x', '-1', '1.5']) await http().get(`/session/security-key?count=${bad}`).expect(400);
  });
});

describe('changing data, with CSRF keys', () => {
  test('PATCH without a key is refused and changes nothing', async () => {
    const { cookie } = await newSession(api.server);
    const res = await http().patch('/session').set('Cookie', cookie).send({ a: 1 }).expect(403);
    expect(res.body).toEqual({ error: { code: 'csrf', message: expect.any(String) } });
    await http().get('/session').set('Cookie', cookie).expect(200, { user: null, data: {} });
  });

  test('a one-time key is consumed; the response carries a fresh one', async () => {
    const { cookie, key } = await newSession(api.server);
    const res = await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .send({ a: 1, b: { c: [true] } })
      .expect(200);
    expect(res.body).toEqual({ user: null, data: { a: 1, b: { c: [true] } } });
    const fresh = res.headers['x-security-key'];
    expect(fresh).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await http().patch('/session').set('Cookie', cookie).set('X-Security-Key', key).send({ a: 2 }).expect(403);
    await http().patch('/session').set('Cookie', cookie).set('X-Security-Key', fresh).send({ a: 2 }).expect(200);
  });

  test('PUT/GET/DELETE /session/data/{key} with any JSON value', async () => {
    const { cookie, key } = await newSession(api.server);
    const put = await http()
      .put('/session/data/greeting')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .type('json')
      .send('"hello"')
      .expect(200);
    expect(put.body).toEqual({ key: 'greeting', value: 'hello' });
    await http().get('/session/data/greeting').set('Cookie', cookie).expect(200, { key: 'greeting', value: 'hello' });
    await http().get('/session/data/missing').set('Cookie', cookie).expect(404);
    const k2 = put.headers['x-security-key'];
    const del = await http().delete('/session/data/greeting').set('Cookie', cookie).set('X-Security-Key', k2).expect(204);
    await http().delete('/session/data/greeting').set('Cookie', cookie).set('X-Security-Key', del.headers['x-security-key']).expect(404);
  });

  test('keys are percent-decoded; reserved and over-long keys are refused', async () => {
    const { cookie, key } = await newSession(api.server);
    const res = await http().put('/session/data/a%2Fb%20c').set('Cookie', cookie).set('X-Security-Key', key).send({ x: 1 }).expect(200);
    expect(res.body.key).toBe('a/b c');
    const k = res.headers['x-security-key'];
    for (const bad of ['__proto__', '__key__', 'x'.repeat(300)]) {
      const r = await http().put(`/session/data/${bad}`).set('Cookie', cookie).set('X-Security-Key', k).send('1').type('json');
      expect([r.status, r.body.error.code]).toEqual([400, 'invalid_key']);
    }
    const broken = await http().put('/session/data/%E0%A4%A').set('Cookie', cookie).set('X-Security-Key', k).send('1').type('json');
    expect(broken.status).toBe(400);
    expect(broken.body.error.code).toEqual(expect.any(String));
  });

  test('the static key works as CSRF proof and is not consumed', async () => {
    const first = await http().get('/session/security-key').expect(200);
    const cookie = cookieOf(first);
    const staticKey = first.headers['sec-x-viur-staticskey'];
    for (let i = 0; i < 2; i++)
      await http().put(`/session/data/k${i}`).set('Cookie', cookie).set('Sec-X-ViUR-StaticSKey', staticKey).send({ i }).expect(200);
    await http().put('/session/data/z').set('Cookie', cookie).set('Sec-X-ViUR-StaticSKey', 'A'.repeat(43)).send({}).expect(403);
  });

  test('validate routes: a one-time key is valid once; the static key always', async () => {
    const first = await http().get('/session/security-key').expect(200);
    const cookie = cookieOf(first);
    const v1 = await http()
      .post('/session/security-key/validate')
      .set('Cookie', cookie)
      .send({ key: first.body.securityKey })
      .expect(200, { valid: true });
    expect(v1.headers['x-security-key']).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await http()
      .post('/session/security-key/validate')
      .set('Cookie', cookie)
      .send({ key: first.body.securityKey })
      .expect(200, { valid: false });
    const staticKey = first.headers['sec-x-viur-staticskey'];
    await http().post('/session/static-security-key/validate').set('Cookie', cookie).send({ key: staticKey }).expect(200, { valid: true });
    await http().post('/session/static-security-key/validate').set('Cookie', cookie).send({ key: staticKey }).expect(200, { valid: true });
    await http().post('/session/static-security-key/validate').set('Cookie', cookie).send({ key: 'nope' }).expect(200, { valid: false });
  });

  test('reset: a new empty session under a new cookie; the old id is dead', async () => {
    const { cookie, key } = await newSession(api.server);
    const w = await http().put('/session/data/a').set('Cookie', cookie).set('X-Security-Key', key).send('1').type('json').expect(200);
    const res = await http()
      .post('/session/reset')
      .set('Cookie', cookie)
      .set('X-Security-Key', w.headers['x-security-key'])
      .expect(200, { user: null, data: {} });
    const next = cookieOf(res);
    expect(next).not.toBe(cookie);
    expect(res.headers['x-security-key']).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The old id names a short-lived tombstone: 409 and no Set-Cookie, so a request in flight cannot undo the reset in the browser.
    const old = await http().get('/session').set('Cookie', cookie).expect(409);
    expect([old.body.error.code, old.headers['set-cookie']]).toEqual(['session_ended', undefined]);
    await http()
      .put('/session/data/b')
      .set('Cookie', next)
      .set('X-Security-Key', res.headers['x-security-key'])
      .send('2')
      .type('json')
      .expect(200);
  });

  test('touch refreshes lastseen without a key', async () => {
    const { cookie } = await newSession(api.server);
    await http().post('/session/touch').set('Cookie', cookie).expect(204);
  });
});

describe('errors', () => {
  test.each([
    ['bad JSON', () => http().patch('/session').set('Content-Type', 'application/json').send('{"a":'), 400, 'bad_json'],
    ['a non-object merge', () => http().patch('/session').set('Content-Type', 'application/json').send('[1]'), 400, 'bad_request'],
    ['a wrong content type', () => http().patch('/session').set('Content-Type', 'text/plain').send('a=1'), 415, 'unsupported_media_type'],
    [
      'a non-UTF-8 charset',
      () => http().patch('/session').set('Content-Type', 'application/json; charset=latin1').send('{}'),
      415,
      'unsupported_media_type',
    ],
    ['an unknown route', () => http().get('/nope'), 404, 'not_found'],
    ['a wrong method', () => http().post('/session'), 405, 'method_not_allowed'],
    ['a missing field', () => http().post('/session/security-key/validate').send({}), 400, 'bad_request'],
  ])('%s gives the JSON error body', async (_label, send, status, code) => {
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual({ error: { code, message: expect.any(String) } });
    expect(JSON.stringify(res.body)).not.toMatch(/at .*\.(js|ts):\d+/);
  });

  test('405 names the allowed methods', async () => {
    const res = await http().delete('/session').expect(405);
    expect(res.headers.allow).toBe('GET, PATCH');
  });

  test('data over the limit is 413, measured as stored; a body over the limit is refused before it is read', async () => {
    api.use({ SESSION_MAX_DATA_BYTES: '4096' });
    const { cookie, key } = await newSession(api.server);
    const res = await http()
      .put('/session/data/big')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .send({ s: 'x'.repeat(5000) })
      .expect(413);
    expect(res.body.error.code).toBe('too_large');
    await http().get('/session/data/big').set('Cookie', cookie).expect(404);
    // The body limit is fixed at start-up (requestBodyLimit: 1,463,640 bytes here): far beyond it, 413 with no store call.
    const rpc = countRpcs();
    try {
      const huge = await http()
        .put('/session/data/big')
        .set('Cookie', cookie)
        .set('X-Security-Key', key)
        .type('json')
        .send(JSON.stringify('y'.repeat(2_000_000)));
      expect(huge.status).toBe(413);
      expect(rpc.total()).toBe(0);
    } finally {
      rpc.restore();
    }
  });

  test('prototype keys cannot pollute anything', async () => {
    const { cookie, key } = await newSession(api.server);
    const res = await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .type('json')
      .send('{"__proto__": {"polluted": true}}');
    expect(res.status).toBe(400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const { key: k2, cookie: c2 } = await newSession(api.server);
    await http()
      .patch('/session')
      .set('Cookie', c2)
      .set('X-Security-Key', k2)
      .send({ constructor: { prototype: 1 }, toString: 'x' })
      .expect(200);
    await http()
      .get('/session')
      .set('Cookie', c2)
      .expect(200, { user: null, data: { constructor: { prototype: 1 }, toString: 'x' } });
  });

  test('a store that does not answer gives 503 with the JSON body, within the deadline', async () => {
    const port = await freePort();
    const dead = new DatastoreSessionStore({
      datastore: new Datastore({ projectId: 'session-test', apiEndpoint: `127.0.0.1:${port}` }),
      kind: 'viur-session',
      timeoutMs: 1500,
      separateBegin: true,
    });
    api.use({}, dead);
    const res = await http()
      .get('/session')
      .set('Cookie', `__Host-viur_cookie_session-test=${'A'.repeat(43)}`);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('store_unavailable');
    expect(res.headers['retry-after']).toBe('1');
  });
});

describe('cross-site requests', () => {
  test('a foreign Origin or Sec-Fetch-Site: cross-site is refused on changes; an allowed origin passes', async () => {
    const { cookie, key } = await newSession(api.server);
    const r1 = await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .set('Origin', 'https://evil.example')
      .send({ a: 1 });
    expect([r1.status, r1.body.error.code]).toEqual([403, 'cross_site']);
    const r2 = await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .set('Sec-Fetch-Site', 'cross-site')
      .send({ a: 1 });
    expect(r2.status).toBe(403);
    api.use({ SESSION_ALLOWED_ORIGINS: 'https://app.example' });
    await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .set('Origin', 'https://app.example')
      .send({ a: 1 })
      .expect(200);
  });
});

describe('cookie attributes per configuration', () => {
  test.each([
    [{ SESSION_SAME_SITE: 'strict' }, /; Path=\/; HttpOnly; Secure; SameSite=Strict$/],
    [{ SESSION_SAME_SITE: 'none' }, /; SameSite=None$/],
    [{ SESSION_SAME_SITE: 'off' }, /; Path=\/; HttpOnly; Secure$/],
    [{ SESSION_COOKIE_PERSISTENT: 'true' }, /; Max-Age=3600; Path=\/; HttpOnly; Secure; SameSite=Lax$/],
    [{ SESSION_COOKIE_NAME: '__Host-session' }, /^__Host-session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Lax$/],
  ])('%j', async (env, pattern) => {
    api.use(env);
    const res = await http().get('/session/security-key').expect(200);
    expect(res.headers['set-cookie'][0]).toMatch(pattern);
    const cookie = cookieOf(res);
    await http()
      .put('/session/data/a')
      .set('Cookie', cookie)
      .set('X-Security-Key', res.body.securityKey)
      .send('1')
      .type('json')
      .expect(200);
  });
});

describe('login and logout (privileged)', () => {
  const token = (claims = {}, header = {}) => api.admin.mint(AUDIENCE, claims, header);

  test('login keeps the persistent fields, binds the user under a new id, reveals the static key; the old id is dead', async () => {
    const { cookie, key } = await newSession(api.server);
    await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .send({ language: 'de', cart: [1] })
      .expect(200);
    const res = await http()
      .post('/session/login')
      .set('Cookie', cookie)
      .set('Authorization', bearer(token()))
      .send({ user: 'user-42' })
      .expect(200);
    expect(res.body).toEqual({ user: 'user-42', data: { language: 'de' } });
    const loggedIn = cookieOf(res);
    expect(loggedIn).not.toBe(cookie);
    const staticKey = res.headers['sec-x-viur-staticskey'];
    expect(staticKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await http()
      .get('/session')
      .set('Cookie', loggedIn)
      .expect(200, { user: 'user-42', data: { language: 'de' } });
    expect((await http().get('/session').set('Cookie', cookie).expect(409)).headers['set-cookie']).toBeUndefined();
    const out = await http()
      .post('/session/logout')
      .set('Cookie', loggedIn)
      .set('Sec-X-ViUR-StaticSKey', staticKey)
      .expect(200, { user: null, data: { language: 'de' } });
    expect(cookieOf(out)).not.toBe(loggedIn);
    await http().get('/session').set('Cookie', loggedIn).expect(409);
  });

  test('a forged, never-issued id is not adopted by login', async () => {
    const forged = `__Host-viur_cookie_session-test=${'F'.repeat(43)}`;
    const res = await http()
      .post('/session/login')
      .set('Cookie', forged)
      .set('Authorization', bearer(token()))
      .send({ user: 'victim' })
      .expect(200);
    expect(cookieOf(res)).not.toContain('F'.repeat(43));
    expect(await api.store.get(digest('F'.repeat(43)))).toBeNull();
  });

  test('logout needs a security key', async () => {
    const { cookie } = await newSession(api.server);
    await http().post('/session/logout').set('Cookie', cookie).expect(403);
  });

  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const now = () => Math.floor(Date.now() / 1000);
  test.each([
    ['no token', () => undefined, 401],
    ['a malformed header', () => 'Basic abc', 401],
    [
      'a bad signature',
      () =>
        bearer(
          signJwt(
            { alg: 'RS256', kid: api.admin.kid },
            { iss: 'https://accounts.google.com', aud: AUDIENCE, email: ADMIN_EMAIL, email_verified: true, iat: now(), exp: now() + 600 },
            other.privateKey,
          ),
        ),
      401,
    ],
    [
      'alg: none',
      () =>
        bearer(
          signJwt(
            { alg: 'none', kid: api.admin.kid },
            { iss: 'https://accounts.google.com', aud: AUDIENCE, email: ADMIN_EMAIL, email_verified: true, iat: now(), exp: now() + 600 },
            null,
          ),
        ),
      401,
    ],
    [
      'HS256 signed with the public key',
      () => {
        const pem = readFileSync(api.admin.jwksFile, 'utf8');
        const head = Buffer.from(JSON.stringify({ alg: 'HS256', kid: api.admin.kid })).toString('base64url');
        const body = Buffer.from(
          JSON.stringify({
            iss: 'https://accounts.google.com',
            aud: AUDIENCE,
            email: ADMIN_EMAIL,
            email_verified: true,
            iat: now(),
            exp: now() + 600,
          }),
        ).toString('base64url');
        return bearer(`${head}.${body}.${createHmac('sha256', pem).update(`${head}.${body}`).digest('base64url')}`);
      },
      401,
    ],
    ['a wrong kid', () => bearer(token({}, { kid: 'unknown' })), 401],
    ['an expired token', () => bearer(token({ iat: now() - 7200, exp: now() - 3600 })), 401],
    ['a token not yet valid', () => bearer(token({ nbf: now() + 3600 })), 401],
    ['a wrong issuer', () => bearer(token({ iss: 'https://evil.example' })), 401],
    ['a wrong audience', () => bearer(api.admin.mint('https://other.example')), 401],
    ['an unverified email', () => bearer(token({ email_verified: false })), 403],
    ['an unlisted email', () => bearer(token({ email: 'someone@else.iam.gserviceaccount.com' })), 403],
  ])('%s is refused (%i)', async (_label, auth, status) => {
    const { cookie } = await newSession(api.server);
    let req = http().post('/session/login').set('Cookie', cookie);
    const value = auth();
    if (value !== undefined) req = req.set('Authorization', value);
    const res = await req.send({ user: 'u' });
    expect(res.status).toBe(status);
    expect(res.body.error.code).toBe(status === 401 ? 'unauthenticated' : 'forbidden');
    await http().get('/session').set('Cookie', cookie).expect(200, { user: null, data: {} });
  });
});

describe('kill (privileged)', () => {
  test('publishes a kill message and answers 202 with its id', async () => {
    const pubsub = new PubSub({ projectId: 'session-test' });
    const [topic] = await pubsub.createTopic(api.runtime.config.killTopic);
    const [sub] = await topic.createSubscription(`${api.runtime.config.killTopic}-check`);
    try {
      const token = api.admin.mint(AUDIENCE);
      await http().post('/sessions/kill').send({ user: 'u1' }).expect(401);
      await http().post('/sessions/kill').set('Authorization', bearer(token)).send({ user: 5 }).expect(400);
      for (const bad of [{ user: 'x'.repeat(501) }, { user: 'a', extra: 1 }, { users: [] }, { user: 'a', issuedAt: 'yesterday' }, {}]) {
        const r = await http().post('/sessions/kill').set('Authorization', bearer(token)).send(bad);
        expect([r.status, r.body.error.code]).toEqual([400, 'bad_request']);
      }
      const res = await http().post('/sessions/kill').set('Authorization', bearer(token)).send({ user: 'u1' }).expect(202);
      expect(res.body.messageId).toEqual(expect.any(String));
      const data = await new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no kill message arrived')), 20_000);
        sub.on('message', (m) => {
          m.ack();
          clearTimeout(timer);
          resolve(JSON.parse(m.data.toString()));
        });
      });
      await sub.close();
      expect(data).toEqual(expect.objectContaining({ user: 'u1' }));
    } finally {
      await pubsub.close();
    }
  });
});

describe('concurrency through the API', () => {
  test('one one-time key used by 20 parallel requests succeeds exactly once', async () => {
    const { cookie, key } = await newSession(api.server);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        http().put(`/session/data/k${i}`).set('Cookie', cookie).set('X-Security-Key', key).send(`${i}`).type('json'),
      ),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 403)).toHaveLength(19);
    const stored = (await http().get('/session').set('Cookie', cookie).expect(200)).body.data;
    expect(Object.keys(stored)).toHaveLength(1);
  });

  test('several keys held at once work in parallel, each once; 20 parallel writes of different keys are all kept', async () => {
    const first = await http().get('/session/security-key?count=10').expect(200);
    const cookie = cookieOf(first);
    const keys: string[] = first.body.securityKeys;
    const rs = await Promise.all(
      keys.map((k, i) => http().put(`/session/data/p${i}`).set('Cookie', cookie).set('X-Security-Key', k).send(`${i}`).type('json')),
    );
    expect(rs.map((r) => r.status)).toEqual(Array(10).fill(200));
    const staticKey = first.headers['sec-x-viur-staticskey'];
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        http()
          .put(`/session/data/s${i}`)
          .set('Cookie', cookie)
          .set('Sec-X-ViUR-StaticSKey', staticKey)
          .send(`${i}`)
          .type('json')
          .expect(200),
      ),
    );
    const data = (await http().get('/session').set('Cookie', cookie).expect(200)).body.data;
    expect(Object.keys(data)).toHaveLength(30);
  });
});

describe('round trips and logs', () => {
  test('a read costs one lookup and no write; a change one lookup and one commit (+ beginTransaction on the emulator)', async () => {
    const { cookie, key } = await newSession(api.server);
    const rpc = countRpcs();
    try {
      await http().get('/session').set('Cookie', cookie).expect(200);
      expect(rpc.counts).toEqual({ lookup: 1 });
      rpc.reset();
      await http().put('/session/data/a').set('Cookie', cookie).set('X-Security-Key', key).send('1').type('json').expect(200);
      expect(rpc.counts).toEqual({ beginTransaction: 1, lookup: 1, commit: 1 });
    } finally {
      rpc.restore();
    }
  });

  test('by default a line only for requests answered 400 or above, with the error code', async () => {
    logs.length = 0;
    const { cookie } = await newSession(api.server);
    await http().get('/session').set('Cookie', cookie).expect(200);
    await http().get('/no/such/route').expect(404);
    await http().put('/session/data/a').set('Cookie', cookie).send('1').type('json').expect(403);
    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({
        severity: 'WARNING',
        httpRequest: expect.objectContaining({ requestUrl: 'unknown', status: 404 }),
        errorCode: 'not_found',
      }),
      expect.objectContaining({
        severity: 'WARNING',
        httpRequest: expect.objectContaining({ requestMethod: 'PUT', requestUrl: '/session/data/{key}', status: 403 }),
        errorCode: 'csrf',
      }),
    ]);
  });

  test('SESSION_LOG_REQUESTS=all: one structured line per request, with the trace id and no session id, key or token', async () => {
    api.use({ SESSION_LOG_REQUESTS: 'all' });
    logs.length = 0;
    const first = await http()
      .get('/session/security-key')
      .set('X-Cloud-Trace-Context', '0123456789abcdef0123456789abcdef/1;o=1')
      .expect(200);
    const cookie = cookieOf(first);
    const token = api.admin.mint(AUDIENCE);
    const login = await http()
      .post('/session/login')
      .set('Cookie', cookie)
      .set('Authorization', bearer(token))
      .send({ user: 'log-user' })
      .expect(200);
    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      severity: 'INFO',
      httpRequest: { requestMethod: 'GET', requestUrl: '/session/security-key', status: 200 },
      'logging.googleapis.com/trace': 'projects/session-test/traces/0123456789abcdef0123456789abcdef',
    });
    const secrets = [
      cookie.split('=')[1],
      first.body.securityKey,
      first.headers['sec-x-viur-staticskey'],
      token,
      cookieOf(login).split('=')[1],
      login.headers['sec-x-viur-staticskey'],
    ];
    for (const s of secrets) for (const l of logs) expect(l).not.toContain(s);
  });
});

export { uniqueNamespace };
