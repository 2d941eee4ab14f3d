/**
 * Security checks as tests, on the real module that registers the functions (functions-framework's
 * test server) and the Firestore emulator; kills go through the Pub/Sub emulator to the kill
 * function, served in this process so that every line it writes is captured too.
 *
 * test/sessionApi.test.ts already has: a forged id not adopted by login, the old id dead after
 * login and reset, the token attacks alg none / HS256 with the public key / another key with the
 * right kid / wrong kid / expired / not yet valid / wrong issuer / wrong audience / unverified and
 * unlisted email (on login), PATCH refused cross-site, a body over the limit with no RPC, one
 * request's log lines without secrets. This file adds what those leave open.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import type { PubSub } from '@google-cloud/pubsub';
import request from 'supertest';
import { AdminVerifier } from '../../functions/http/adminAuth';
import { signJwt } from '../../scripts/localAdmin';
import { loadConfig } from '../../lib/setup/config';
import { ConfigError } from '../../lib/core/errors';
import { digest } from '../../lib/core/ids';
import { closePublishers } from '../../lib/jobs/killPublisher';
import { setLogSink } from '../../lib/setup/log';
import { ADMIN_EMAIL, AUDIENCE, cookieOf, newSession, startApi, type ApiHarness } from '../support/api';
import { countRpcs, datastore, uniqueNamespace } from '../support/fixtures';
import { pubsub, pushTopic, uniqueName } from '../support/pubsub';
import { storeAt, until } from './support';

const COOKIE = '__Host-viur_cookie_session-test';

let api: ApiHarness;
let client: PubSub;
let killServer: Server;
let killPort: number;
let topicName: string;
/** Everything written while capturing: our log lines, stdout, stderr and the console. */
const captured: string[] = [];
/** Requests to SESSION_KILL_PUSH_URL: a kill published by a request that should have been refused. */
let pushSink: Server;
let pushUrl: string;
const pushed: string[] = [];

const http = () => request(api.server);
const bearer = (t: string) => `Bearer ${t}`;
const idOf = (cookie: string) => cookie.slice(cookie.indexOf('=') + 1);

beforeAll(async () => {
  client = pubsub();
  topicName = uniqueName('sec-kill');
  api = await startApi({ SESSION_KILL_TOPIC: topicName });
  api.use({ SESSION_KILL_TOPIC: topicName });
  setLogSink((line) => captured.push(line));
  // The kill function in this process, behind a Pub/Sub emulator push subscription.
  killServer = getTestServer('killSessionByUser');
  await new Promise<void>((r) => killServer.listen(0, '127.0.0.1', () => r()));
  killPort = (killServer.address() as AddressInfo).port;
  await pushTopic(client, topicName, killPort);
  pushSink = createServer((req, res) => {
    pushed.push(`${req.method} ${req.url}`);
    res.end();
  });
  await new Promise<void>((r) => pushSink.listen(0, '127.0.0.1', () => r()));
  pushUrl = `http://127.0.0.1:${(pushSink.address() as AddressInfo).port}/projects/session-test/topics/x`;
}, 60_000);

afterAll(async () => {
  setLogSink(null);
  await closePublishers();
  await new Promise<void>((r) => killServer.close(() => r()));
  await new Promise<void>((r) => pushSink.close(() => r()));
  await client?.close();
});

beforeEach(() => {
  // Every request's log line, not only the errors': the secrets test searches all of them.
  api.use({ SESSION_KILL_TOPIC: topicName, SESSION_LOG_REQUESTS: 'all' });
});

describe('session fixation: an id the server did not issue, or no longer honours, is never adopted', () => {
  const forged = 'F0rged'.padEnd(43, 'x');
  const forgedCookie = `${COOKIE}=${forged}`;

  test.each([
    ['GET /session', () => http().get('/session')],
    ['GET /session/data/a', () => http().get('/session/data/a')],
    ['GET /session/security-key', () => http().get('/session/security-key')],
    ['POST /session/touch', () => http().post('/session/touch')],
    ['POST /session/security-key/validate', () => http().post('/session/security-key/validate').send({ key: forged })],
    ['POST /session/static-security-key/validate', () => http().post('/session/static-security-key/validate').send({ key: forged })],
    ['PATCH /session', () => http().patch('/session').set('Sec-X-ViUR-StaticSKey', forged).send({ a: 1 })],
    [
      'POST /session/login',
      () =>
        http()
          .post('/session/login')
          .set('Authorization', bearer(api.admin.mint(AUDIENCE)))
          .send({ user: 'victim' }),
    ],
  ])('%s with a forged, never-issued id', async (_route, send) => {
    const res = await send().set('Cookie', forgedCookie);
    expect(res.status).toBeLessThan(500);
    const setCookies = (res.headers['set-cookie'] as unknown as string[] | undefined) ?? [];
    for (const c of setCookies) expect(c.startsWith(`${COOKIE}=${forged}`)).toBe(false);
    expect(await api.store.get(digest(forged))).toBeNull();
  });

  async function deadIdAfter(end: (s: { cookie: string; key: string; staticKey: string }) => Promise<unknown>): Promise<string> {
    const first = await http().get('/session/security-key').expect(200);
    const s = { cookie: cookieOf(first), key: first.body.securityKey as string, staticKey: first.headers['sec-x-viur-staticskey'] };
    await http()
      .put('/session/data/language')
      .set('Cookie', s.cookie)
      .set('Sec-X-ViUR-StaticSKey', s.staticKey)
      .type('json')
      .send('"de"')
      .expect(200);
    await end(s);
    return s.cookie;
  }

  async function expectNotAdopted(cookie: string): Promise<void> {
    const stored = await api.store.get(digest(idOf(cookie)));
    await http().get('/session').set('Cookie', cookie).expect(200, { user: null, data: {} });
    const res = await http().get('/session/security-key').set('Cookie', cookie).expect(200);
    expect(idOf(cookieOf(res))).not.toBe(idOf(cookie));
    const login = await http()
      .post('/session/login')
      .set('Cookie', cookie)
      .set('Authorization', bearer(api.admin.mint(AUDIENCE)))
      .send({ user: 'u' })
      .expect(200);
    expect(idOf(cookieOf(login))).not.toBe(idOf(cookie));
    // Whatever is stored under the old id (an expired entity until the cleanup) was not revived.
    expect(await api.store.get(digest(idOf(cookie)))).toEqual(stored);
  }

  test('ids ended by reset, logout and login, and an expired id, are not adopted by any route, login included', async () => {
    const afterReset = await deadIdAfter((s) =>
      http().post('/session/reset').set('Cookie', s.cookie).set('X-Security-Key', s.key).expect(200),
    );
    let loggedIn = '';
    const beforeLogin = await deadIdAfter(async (s) => {
      const res = await http()
        .post('/session/login')
        .set('Cookie', s.cookie)
        .set('Authorization', bearer(api.admin.mint(AUDIENCE)))
        .send({ user: 'u1' })
        .expect(200);
      loggedIn = cookieOf(res);
    });
    const out = await http().get('/session/security-key').set('Cookie', loggedIn).expect(200);
    await http().post('/session/logout').set('Cookie', loggedIn).set('X-Security-Key', out.body.securityKey).expect(200);
    // Rotated ids name a short-lived tombstone (issue 12): every route answers 409 session_ended
    // without Set-Cookie, nothing is adopted, and the tombstone is left as it was.
    for (const dead of [afterReset, beforeLogin, loggedIn]) {
      const tomb = await api.store.get(digest(idOf(dead)));
      expect(tomb?.endedAt).toEqual(expect.any(Number));
      for (const send of [
        () => http().get('/session'),
        () => http().get('/session/security-key'),
        () =>
          http()
            .post('/session/login')
            .set('Authorization', bearer(api.admin.mint(AUDIENCE)))
            .send({ user: 'u' }),
      ]) {
        const res = await send().set('Cookie', dead);
        expect([res.status, res.body.error?.code, res.headers['set-cookie']]).toEqual([409, 'session_ended', undefined]);
      }
      expect(await api.store.get(digest(idOf(dead)))).toEqual(tomb);
    }
    api.use({ SESSION_KILL_TOPIC: topicName, SESSION_LIFETIME_SECONDS: '1' });
    const expired = await deadIdAfter(() => new Promise((r) => setTimeout(r, 1100)));
    expect(await api.store.get(digest(idOf(expired)))).not.toBeNull();
    await expectNotAdopted(expired);
  });

  test('an issued id planted by an attacker is worthless after the victim logs in: the attacker’s cookie, static key and one-time keys are dead', async () => {
    const planted = await http().get('/session/security-key?count=2').expect(200);
    const attacker = {
      cookie: cookieOf(planted),
      keys: planted.body.securityKeys as string[],
      staticKey: planted.headers['sec-x-viur-staticskey'],
    };
    const login = await http()
      .post('/session/login')
      .set('Cookie', attacker.cookie)
      .set('Authorization', bearer(api.admin.mint(AUDIENCE)))
      .send({ user: 'victim' })
      .expect(200);
    const victim = cookieOf(login);
    expect(idOf(victim)).not.toBe(idOf(attacker.cookie));
    await http().get('/session').set('Cookie', attacker.cookie).expect(409);
    // The attacker's keys do not work on the victim's new session.
    await http().patch('/session').set('Cookie', victim).set('Sec-X-ViUR-StaticSKey', attacker.staticKey).send({ a: 1 }).expect(403);
    await http().patch('/session').set('Cookie', victim).set('X-Security-Key', attacker.keys[0]).send({ a: 1 }).expect(403);
    const check = await http().post('/session/security-key/validate').set('Cookie', victim).send({ key: attacker.keys[1] }).expect(200);
    expect(check.body).toEqual({ valid: false });
    await http().get('/session').set('Cookie', victim).expect(200, { user: 'victim', data: {} });
  });
});

/** A full flow: keys, writes, validation, login, a refused token, logout, login, kill (through the kill function), a store failure. */
async function fullFlow(): Promise<{ secrets: string[]; randomSecrets: string[]; killMessageId: string }> {
  const secrets: string[] = [];
  const keep = (...s: Array<string | undefined>) => secrets.push(...s.filter((x): x is string => typeof x === 'string' && x.length > 0));
  const first = await http().get('/session/security-key?count=3').expect(200);
  const c1 = cookieOf(first);
  const [k1, k2, k3] = first.body.securityKeys as string[];
  const s1 = first.headers['sec-x-viur-staticskey'];
  keep(idOf(c1), k1, k2, k3, s1);
  const put = await http().put('/session/data/language').set('Cookie', c1).set('X-Security-Key', k1).type('json').send('"de"').expect(200);
  keep(put.headers['x-security-key']);
  const valid = await http().post('/session/security-key/validate').set('Cookie', c1).send({ key: k2 }).expect(200, { valid: true });
  keep(valid.headers['x-security-key']);
  await http().post('/session/security-key/validate').set('Cookie', c1).send({ key: k2 }).expect(200, { valid: false });
  await http().post('/session/static-security-key/validate').set('Cookie', c1).send({ key: s1 }).expect(200, { valid: true });
  // Refusals that carry secrets in the request: a consumed key, a key in the path and the query.
  await http().patch('/session').set('Cookie', c1).set('X-Security-Key', k1).send({ a: 1 }).expect(403);
  await http().get(`/session/data/${k3}?count=${s1}`).set('Cookie', c1).expect(404);
  const token = api.admin.mint(AUDIENCE);
  keep(token, ...token.split('.'));
  const tampered = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  keep(tampered, tampered.split('.')[2]);
  await http().post('/session/login').set('Cookie', c1).set('Authorization', bearer(tampered)).send({ user: 'alice' }).expect(401);
  const login = await http()
    .post('/session/login')
    .set('Cookie', c1)
    .set('Authorization', bearer(token))
    .send({ user: 'alice' })
    .expect(200);
  const c2 = cookieOf(login);
  const s2 = login.headers['sec-x-viur-staticskey'];
  keep(idOf(c2), s2);
  await http().get('/session').set('Cookie', c2).expect(200);
  await http().get('/session').set('Cookie', c1).expect(409);
  const out = await http().post('/session/logout').set('Cookie', c2).set('Sec-X-ViUR-StaticSKey', s2).expect(200);
  const c3 = cookieOf(out);
  keep(idOf(c3), out.headers['sec-x-viur-staticskey']);
  const again = await http()
    .post('/session/login')
    .set('Cookie', c3)
    .set('Authorization', bearer(token))
    .send({ user: 'alice' })
    .expect(200);
  const c4 = cookieOf(again);
  keep(idOf(c4), again.headers['sec-x-viur-staticskey']);
  // A store failure with a live cookie: 503, logged, and still no secret in the log.
  const dead = storeAt(1, 500).store; // nothing listens on port 1
  api.use({ SESSION_KILL_TOPIC: topicName }, dead);
  await http().get('/session').set('Cookie', c4).expect(503);
  api.use({ SESSION_KILL_TOPIC: topicName });
  // use() made a fresh namespace: the rest of the flow starts a new session there.
  const fresh = await http().get('/session/security-key').expect(200);
  const c5 = cookieOf(fresh);
  keep(idOf(c5), fresh.body.securityKey, fresh.headers['sec-x-viur-staticskey']);
  const login5 = await http()
    .post('/session/login')
    .set('Cookie', c5)
    .set('Authorization', bearer(token))
    .send({ user: 'alice' })
    .expect(200);
  const c6 = cookieOf(login5);
  keep(idOf(c6), login5.headers['sec-x-viur-staticskey']);
  const kill = await http().post('/sessions/kill').set('Authorization', bearer(token)).send({ user: 'alice' }).expect(202);
  const killMessageId = kill.body.messageId as string;
  await until(
    'the kill finished in the kill function',
    () => captured.some((l) => l.includes('"kill finished"') && l.includes(killMessageId)),
    60_000,
  );
  await http().get('/session').set('Cookie', c6).expect(200, { user: null, data: {} });
  // Ids and keys are 43 random base64url characters; a JWT's third segment is its signature.
  const randomSecrets = [
    ...new Set([...secrets.filter((x) => /^[A-Za-z0-9_-]{43}$/.test(x)), token.split('.')[2], tampered.split('.')[2]]),
  ];
  return { secrets, randomSecrets, killMessageId };
}

test('no session id, security key or token appears in any output of a full flow (log lines, stdout, stderr, console), kill function included', async () => {
  const writes: string[] = [];
  const spies = [
    jest.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => (writes.push(String(chunk)), true)),
    jest.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => (writes.push(String(chunk)), true)),
    ...(['log', 'info', 'warn', 'error', 'debug'] as const).map((m) =>
      jest.spyOn(console, m).mockImplementation((...args: unknown[]) => void writes.push(args.map(String).join(' '))),
    ),
  ];
  captured.length = 0;
  let flow: Awaited<ReturnType<typeof fullFlow>>;
  try {
    flow = await fullFlow();
  } finally {
    for (const s of spies) s.mockRestore();
  }
  const everything = [...captured, ...writes].join('\n');
  // The capture saw the flow: request lines of the API and the kill function's lines.
  expect(captured.some((l) => l.includes('"POST /session/login 200"'))).toBe(true);
  expect(captured.some((l) => l.includes('"POST /session/login 401"'))).toBe(true);
  expect(captured.some((l) => l.includes('"GET /session 503"'))).toBe(true);
  expect(captured.some((l) => l.includes('"kill finished"') && l.includes(flow.killMessageId))).toBe(true);
  expect(flow.secrets.length).toBeGreaterThan(20);
  expect(flow.secrets.filter((s) => everything.includes(s))).toEqual([]);
  // Nor any part of one: every 16-character piece of the random ones (ids, keys, signatures; 96 bits
  // each, so a match is no accident) is looked for too. JWT header and payload segments are left out
  // of this, their pieces are predictable JSON in base64; they are searched whole above.
  const pieces = new Set<string>();
  for (let i = 0; i + 16 <= everything.length; i++) pieces.add(everything.slice(i, i + 16));
  const partial = flow.randomSecrets.filter((sec) =>
    Array.from({ length: sec.length - 15 }, (_, i) => sec.slice(i, i + 16)).some((p) => pieces.has(p)),
  );
  expect(partial.map((sec) => `${sec.slice(0, 4)}…(${sec.length})`)).toEqual([]);
}, 120_000);

test('no raw session id or key is in the database: entities are named by SHA-256 digests, keys stored as digests', async () => {
  const namespace = uniqueNamespace('raw');
  api.use({ SESSION_KILL_TOPIC: topicName, SESSION_NAMESPACE: namespace });
  const secrets: string[] = [];
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const first = await http().get('/session/security-key?count=4').expect(200);
    const c = cookieOf(first);
    const staticKey = first.headers['sec-x-viur-staticskey'];
    // language is kept across login (a persistent field), so the stored entity has data.
    const put = await http()
      .put('/session/data/language')
      .set('Cookie', c)
      .set('X-Security-Key', first.body.securityKeys[0])
      .type('json')
      .send(`"lang-${i}"`)
      .expect(200);
    const login = await http()
      .post('/session/login')
      .set('Cookie', c)
      .set('Authorization', bearer(api.admin.mint(AUDIENCE)))
      .send({ user: `user-${i}` })
      .expect(200);
    const keys = await http().get('/session/security-key?count=3').set('Cookie', cookieOf(login)).expect(200);
    ids.push(idOf(cookieOf(login)));
    secrets.push(
      idOf(c),
      idOf(cookieOf(login)),
      staticKey,
      login.headers['sec-x-viur-staticskey'],
      put.headers['x-security-key'],
      ...first.body.securityKeys,
      ...keys.body.securityKeys,
    );
  }
  const ds = datastore();
  const [all] = await ds.runQuery(ds.createQuery(namespace, 'viur-session'));
  // Each login left a tombstone of the pre-login session (issue 12), also named by a digest.
  const entities = all.filter((e) => !e.endedAt);
  expect([entities.length, all.length]).toEqual([3, 6]);
  const names = entities.map((e) => (e[ds.KEY] as { name: string }).name);
  expect(names.sort()).toEqual(ids.map(digest).sort());
  for (const n of all.map((e) => (e[ds.KEY] as { name: string }).name)) expect(n).toMatch(/^[0-9a-f]{64}$/);
  const dump = JSON.stringify(entities.map((e) => ({ key: e[ds.KEY], ...e })));
  expect(dump).toContain('lang-1');
  expect(secrets.filter((s) => dump.includes(s))).toEqual([]);
  // Nor in any other form a reader could replay: the digests of keys are what is stored.
  for (const e of entities) expect(String(e.staticSecurityKey)).toMatch(/^[0-9a-f]{64}$/);
});

describe('privileged-token attacks not covered in test/sessionApi.test.ts, on login and on kill', () => {
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const now = () => Math.floor(Date.now() / 1000);
  const claims = (extra: Record<string, unknown> = {}) => ({
    iss: 'https://accounts.google.com',
    aud: AUDIENCE,
    sub: '1',
    email: ADMIN_EMAIL,
    email_verified: true,
    iat: now(),
    exp: now() + 600,
    ...extra,
  });
  const token = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}) => api.admin.mint(AUDIENCE, extra, header);
  const otherJwk = { ...other.publicKey.export({ format: 'jwk' }), kid: 'attacker', alg: 'RS256' };

  const refused: Array<[string, number, () => string]> = [
    [
      'a token whose header embeds the attacker’s own key (jwk)',
      401,
      () => signJwt({ alg: 'RS256', kid: api.admin.kid, jwk: otherJwk }, claims(), other.privateKey),
    ],
    [
      'a token pointing to the attacker’s key set (jku, x5u)',
      401,
      () =>
        signJwt(
          { alg: 'RS256', kid: 'attacker', jku: 'https://evil.example/jwks.json', x5u: 'https://evil.example/cert.pem' },
          claims(),
          other.privateKey,
        ),
    ],
    [
      'a kid that is an Object.prototype key (__proto__)',
      401,
      () => signJwt({ alg: 'RS256', kid: '__proto__' }, claims(), other.privateKey),
    ],
    [
      'a kid that is an Object.prototype key (constructor)',
      401,
      () => signJwt({ alg: 'RS256', kid: 'constructor' }, claims(), other.privateKey),
    ],
    ['no signature at all (alg RS256, empty third part)', 401, () => signJwt({ alg: 'RS256', kid: api.admin.kid }, claims(), null)],
    [
      'the payload swapped under a valid signature',
      401,
      () => {
        const [h, , sig] = token().split('.');
        return `${h}.${Buffer.from(JSON.stringify(claims({ email: 'someone@else.iam.gserviceaccount.com' }))).toString('base64url')}.${sig}`;
      },
    ],
    ['no expiry', 401, () => token({ exp: undefined })],
    ['no issue time', 401, () => token({ iat: undefined })],
    ['issued in the future', 401, () => token({ iat: now() + 3600, exp: now() + 7200 })],
    ['a lifetime over a day', 401, () => token({ exp: now() + 3 * 86400 })],
    ['the audience inside an array', 401, () => token({ aud: [AUDIENCE, 'https://other.example'] })],
    ['an audience that only starts like the right one', 401, () => token({ aud: `${AUDIENCE}.evil.example` })],
    ['an issuer with a trailing slash', 401, () => token({ iss: 'https://accounts.google.com/' })],
    ['email_verified as the string "true"', 403, () => token({ email_verified: 'true' })],
    ['no email_verified', 403, () => token({ email_verified: undefined })],
    ['an allowed email with a suffix', 403, () => token({ email: `${ADMIN_EMAIL}.evil.example` })],
    ['an allowed email with whitespace', 403, () => token({ email: ` ${ADMIN_EMAIL}` })],
    ['an email given as an array', 403, () => token({ email: [ADMIN_EMAIL] })],
    ['the allowed address as sub instead of email', 403, () => token({ email: undefined, sub: ADMIN_EMAIL })],
  ];

  test.each(refused)('%s is refused (%i), on login and kill, changing and publishing nothing', async (_label, status, make) => {
    api.use({ SESSION_KILL_TOPIC: topicName, SESSION_KILL_PUSH_URL: pushUrl });
    pushed.length = 0;
    const t = make();
    const { cookie } = await newSession(api.server);
    const login = await http().post('/session/login').set('Cookie', cookie).set('Authorization', bearer(t)).send({ user: 'root' });
    expect([login.status, login.body.error?.code]).toEqual([status, status === 401 ? 'unauthenticated' : 'forbidden']);
    expect(login.headers['set-cookie']).toBeUndefined();
    await http().get('/session').set('Cookie', cookie).expect(200, { user: null, data: {} });
    const kill = await http().post('/sessions/kill').set('Authorization', bearer(t)).send({ user: null });
    expect([kill.status, kill.body.error?.code]).toEqual([status, status === 401 ? 'unauthenticated' : 'forbidden']);
    await new Promise((r) => setTimeout(r, 50));
    expect(pushed).toEqual([]);
  });

  // Decisions (docs/reliability.md): the allowlist compares emails case-insensitively (Google
  // lowercases service-account emails; the domain part is case-insensitive anyway), and `typ` is not
  // a security check (the signature by Google's key, issuer, audience and email are).
  test.each([
    ['an allowed email in other case', () => token({ email: ADMIN_EMAIL.toUpperCase() })],
    ['a typ other than JWT', () => token({}, { typ: 'at+jwt' })],
  ])('%s is accepted when everything else is valid', async (_label, make) => {
    const { cookie } = await newSession(api.server);
    await http().post('/session/login').set('Cookie', cookie).set('Authorization', bearer(make())).send({ user: 'case' }).expect(200);
  });

  test('the expected audience is never taken from the request: a token for another audience is refused whatever Host says', async () => {
    const foreign = api.admin.mint('https://evil.example');
    const { cookie } = await newSession(api.server);
    for (const headers of [
      { Host: 'evil.example', 'X-Forwarded-Proto': 'https' },
      { Host: 'evil.example', 'X-Forwarded-Host': 'evil.example', 'X-Forwarded-Proto': 'https' },
    ]) {
      const res = await http()
        .post('/session/login')
        .set(headers)
        .set('Cookie', cookie)
        .set('Authorization', bearer(foreign))
        .send({ user: 'root' });
      expect(res.status).toBe(401);
    }
    // Nor when no audience is configured: the origin the request names is not a fallback.
    const unconfigured = new AdminVerifier({ audience: undefined, principals: [ADMIN_EMAIL], jwksFile: api.admin.jwksFile });
    await expect(unconfigured.verify(bearer(foreign))).rejects.toMatchObject({ status: 403, code: 'forbidden' });
    await expect(unconfigured.verify(bearer(token()))).rejects.toMatchObject({ status: 403 });
    // Hence the configuration: privileged principals without a configured audience stop the start.
    const env = { GOOGLE_CLOUD_PROJECT: 'p', SESSION_ADMIN_PRINCIPALS: ADMIN_EMAIL };
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(/^SESSION_ADMIN_AUDIENCE: /);
    expect(loadConfig({ ...env, SESSION_ADMIN_AUDIENCE: AUDIENCE }).admin.audience).toBe(AUDIENCE);
    expect(loadConfig({ GOOGLE_CLOUD_PROJECT: 'p' }).admin).toEqual({ audience: undefined, principals: [], jwksFile: undefined });
  });
});

describe('cross-site requests are refused on every route that changes a session', () => {
  const routes: Array<[string, string, (t: request.Test) => request.Test]> = [
    ['PATCH', '/session', (t) => t.send({ a: 1 })],
    ['PUT', '/session/data/a', (t) => t.type('json').send('1')],
    ['DELETE', '/session/data/language', (t) => t],
    ['POST', '/session/reset', (t) => t],
    ['POST', '/session/touch', (t) => t],
    ['POST', '/session/logout', (t) => t],
    ['POST', '/session/security-key/validate', (t) => t],
    ['GET', '/session/security-key?count=16', (t) => t],
    ['POST', '/session/devices/logout-others', (t) => t],
    ['DELETE', '/session/devices/AAAAAAAAAAAAAAAAAAAAAA', (t) => t],
  ];
  const marks: Array<[string, (host: string) => Record<string, string>]> = [
    ['Origin of another site', () => ({ Origin: 'https://evil.example' })],
    ['Origin of another port', (host) => ({ Origin: `http://${host.split(':')[0]}:1` })],
    ['Origin of a subdomain', (host) => ({ Origin: `http://evil.${host}` })],
    ['Origin: null (sandboxed or redirected)', () => ({ Origin: 'null' })],
    ['a malformed Origin', () => ({ Origin: 'https://' })],
    ['Sec-Fetch-Site: cross-site', () => ({ 'Sec-Fetch-Site': 'cross-site' })],
    [
      'Sec-Fetch-Site: cross-site and X-Forwarded-Host of the attacker',
      () => ({ 'Sec-Fetch-Site': 'cross-site', 'X-Forwarded-Host': 'evil.example' }),
    ],
    // A sibling subdomain's <img src=…/session/security-key?count=16> or link: no Origin, same-site (issue 26, finding 7).
    ['Sec-Fetch-Site: same-site (a sibling subdomain)', () => ({ 'Sec-Fetch-Site': 'same-site' })],
    ['Sec-Fetch-Site: same-site, a navigation', () => ({ 'Sec-Fetch-Site': 'same-site', 'Sec-Fetch-Mode': 'navigate' })],
    ['Sec-Fetch-Site of a value browsers do not send', () => ({ 'Sec-Fetch-Site': 'same-origin, cross-site' })],
  ];

  test.each(routes)('%s %s: 403 cross_site for every cross-site mark, nothing changes, no key consumed', async (method, path, body) => {
    const first = await http().get('/session/security-key').expect(200);
    const cookie = cookieOf(first);
    const key = first.body.securityKey as string;
    const staticKey = first.headers['sec-x-viur-staticskey'];
    await http()
      .put('/session/data/language')
      .set('Cookie', cookie)
      .set('Sec-X-ViUR-StaticSKey', staticKey)
      .type('json')
      .send('"de"')
      .expect(200);
    const storageKey = digest(idOf(cookie));
    const before = await api.store.get(storageKey);
    for (const [label, headers] of marks) {
      const req = request(api.server)[method.toLowerCase() as 'post'](path);
      // supertest's Host is 127.0.0.1:<ephemeral port>; the marks are built from a same-shaped host.
      const res = await body(
        req.set('Cookie', cookie).set('X-Security-Key', key).set('Sec-X-ViUR-StaticSKey', staticKey).set(headers('127.0.0.1:8080')),
      );
      expect({ label, status: res.status, code: res.body.error?.code, setCookie: res.headers['set-cookie'] }).toEqual({
        label,
        status: 403,
        code: 'cross_site',
        setCookie: undefined,
      });
    }
    expect(await api.store.get(storageKey)).toEqual(before);
    // The key was not consumed: it still works from the site itself.
    await http().post('/session/security-key/validate').set('Cookie', cookie).send({ key }).expect(200, { valid: true });
  });

  test('the same requests from the site itself (same Origin, Sec-Fetch-Site same-origin or none, or no browser mark at all) pass', async () => {
    const first = await http().get('/session/security-key').expect(200);
    const cookie = cookieOf(first);
    const staticKey = first.headers['sec-x-viur-staticskey'];
    // Behind Google's front end (TLS terminated there) X-Forwarded-Proto names the scheme the browser used.
    await http()
      .patch('/session')
      .set('Host', 'sessions.example')
      .set('X-Forwarded-Proto', 'https')
      .set('Origin', 'https://sessions.example')
      .set('Cookie', cookie)
      .set('Sec-X-ViUR-StaticSKey', staticKey)
      .send({ a: 1 })
      .expect(200);
    await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('Sec-X-ViUR-StaticSKey', staticKey)
      .set('Sec-Fetch-Site', 'same-origin')
      .send({ b: 2 })
      .expect(200);
    // A URL typed into the address bar, or a bookmark: none. A backend or curl: no mark.
    await http().get('/session/security-key?count=2').set('Cookie', cookie).set('Sec-Fetch-Site', 'none').expect(200);
    await http().patch('/session').set('Cookie', cookie).set('Sec-X-ViUR-StaticSKey', staticKey).send({ c: 3 }).expect(200);
  });
});

describe('input over the limits is refused before any store call', () => {
  let rpc: ReturnType<typeof countRpcs>;
  beforeEach(() => {
    rpc = countRpcs();
  });
  afterEach(() => rpc.restore());

  test('a cookie value of 4 KiB, or 300 cookies, costs no lookup', async () => {
    const huge = `${COOKIE}=${'A'.repeat(4096)}`;
    const many = Array.from({ length: 300 }, (_, i) => `c${i}=${'v'.repeat(20)}`).join('; ');
    await http().get('/session').set('Cookie', huge).expect(200, { user: null, data: {} });
    await http().get('/session').set('Cookie', many).expect(200, { user: null, data: {} });
    const res = await http().patch('/session').set('Cookie', huge).set('Sec-X-ViUR-StaticSKey', 'A'.repeat(4096)).send({ a: 1 });
    expect([res.status, res.body.error?.code]).toEqual([403, 'csrf']);
    expect(rpc.total()).toBe(0);
  });

  test('headers over node’s limit are refused by the HTTP server (431) without reaching the function', async () => {
    const res = await http()
      .get('/session')
      .set('Cookie', `${COOKIE}=${'A'.repeat(43)}`)
      .set('X-Pad', 'p'.repeat(20_000));
    expect(res.status).toBe(431);
    expect(rpc.total()).toBe(0);
  });

  test('a chunked body over the limit (no Content-Length) is cut off at the limit with 413', async () => {
    const { cookie } = await newSession(api.server);
    rpc.reset();
    const address = await new Promise<AddressInfo>((r) => {
      const s = api.server.listen(0, '127.0.0.1', () => r(s.address() as AddressInfo));
    });
    try {
      const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: address.port,
            method: 'PUT',
            path: '/session/data/big',
            headers: { cookie, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
          },
          (res) => {
            let text = '';
            res.on('data', (c) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on('error', reject);
        req.write('"');
        let sent = 0;
        const chunk = 'x'.repeat(64 * 1024);
        const pump = () => {
          while (sent < 2 * 1024 * 1024) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          req.end('"');
        };
        req.on('error', () => undefined);
        pump();
      });
      expect(result.status).toBe(413);
      expect(JSON.parse(result.body)).toEqual({ error: { code: 'too_large', message: expect.any(String) } });
    } finally {
      await new Promise<void>((r) => api.server.close(() => r()));
    }
    expect(rpc.total()).toBe(0);
  });

  test('a data key over 256 bytes, a key count over the maximum and a body of the wrong type cost no store call', async () => {
    const { cookie, key } = await newSession(api.server);
    rpc.reset();
    await http()
      .put(`/session/data/${'k'.repeat(257)}`)
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .type('json')
      .send('1')
      .expect(400);
    await http().get('/session/security-key?count=17').set('Cookie', cookie).expect(400);
    await http().patch('/session').set('Cookie', cookie).set('X-Security-Key', key).type('text/plain').send('a=1').expect(415);
    await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .set('Content-Type', 'application/json')
      .send('{"a":')
      .expect(400);
    expect(rpc.total()).toBe(0);
    // And the key was not consumed by any of them.
    await http().post('/session/security-key/validate').set('Cookie', cookie).send({ key }).expect(200, { valid: true });
  });
});

describe('a body that trickles in (issue 26, finding 8)', () => {
  test('one byte a second: 408 request_timeout with the JSON error body once the body deadline passes, the connection closed, nothing written', async () => {
    const { cookie, key } = await newSession(api.server);
    const address = await new Promise<AddressInfo>((r) => {
      const s = api.server.listen(0, '127.0.0.1', () => r(s.address() as AddressInfo));
    });
    const socket = connect(address.port, '127.0.0.1');
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    socket.on('error', () => undefined);
    let trickle: NodeJS.Timeout | undefined;
    try {
      socket.write(
        `PUT /session/data/slow HTTP/1.1\r\nHost: 127.0.0.1:${address.port}\r\nCookie: ${cookie}\r\nX-Security-Key: ${key}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"',
      );
      trickle = setInterval(() => socket.write('x'), 1000);
      // Bounded: a body of 100 bytes at this pace would take 100 s; without a deadline nothing answers meanwhile.
      const closed = await Promise.race([
        new Promise<boolean>((r) => socket.once('close', () => r(true))),
        new Promise<boolean>((r) => setTimeout(() => r(false), 25_000)),
      ]);
      const end = received.indexOf('\r\n\r\n');
      const head = received.slice(0, Math.max(end, 0)).toLowerCase();
      expect({
        closed,
        status: Number(head.split(' ')[1]),
        body: end < 0 ? null : (JSON.parse(received.slice(end + 4)) as unknown),
      }).toEqual({
        closed: true,
        status: 408,
        body: { error: { code: 'request_timeout', message: expect.stringContaining('did not arrive') } },
      });
      expect(head).toContain('connection: close');
    } finally {
      clearInterval(trickle);
      socket.destroy();
      await new Promise<void>((r) => api.server.close(() => r()));
    }
    await http().get('/session/data/slow').set('Cookie', cookie).expect(404);
    // The key was not consumed.
    await http().post('/session/security-key/validate').set('Cookie', cookie).send({ key }).expect(200, { valid: true });
  }, 40_000);
});
