/**
 * examples/firebase-login: a backend that verifies a Firebase ID token and then logs the browser's
 * session in through `POST /session/login` with its own identity. Firebase-shaped tokens are signed
 * here with local RSA keys whose x509 certificates (openssl) are served the way Google serves
 * securetoken's, and the example fetches them with its production code; the backend's own tokens
 * are the API harness's local admin tokens, as everywhere in the API tests.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHmac, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { createLoginApp } from '../../examples/firebase-login/app';
import { FirebaseTokenVerifier, googleCertificates, type FirebaseVerifierOptions } from '../../examples/firebase-login/firebaseToken';
import { configure } from '../../examples/firebase-login/main';
import { writeLauncherState } from '../../lib/setup/launcherState';
import { freePort } from '../../scripts/emulators';
import { signJwt, type TokenClaims } from '../../scripts/localAdmin';
import { ADMIN_EMAIL, AUDIENCE, cookieOf, startApi, type ApiHarness } from '../support/api';
import { ROOT } from '../support/functionsFramework';
import { type Launcher, startLauncher } from '../support/launcher';

const PROJECT = 'demo-firebase-login';
const ISSUER = `https://securetoken.google.com/${PROJECT}`;
const UID = 'Xk3vQ9aZ1bR7uT2wY5cD8eF0gH4j';
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) FirebaseLoginTest/1.0';

/** An RSA key and its self-signed x509 certificate, as Google publishes securetoken's. */
function certifiedKey(dir: string, name: string): { key: KeyObject; cert: string } {
  const run = spawnSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=securetoken.system.gserviceaccount.com'],
      ...['-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)],
    ],
    { encoding: 'utf8' },
  );
  if (run.status !== 0) throw new Error(`openssl could not make a test certificate: ${run.error?.message ?? run.stderr}`);
  return { key: createPrivateKey(readFileSync(join(dir, `${name}.key`))), cert: readFileSync(join(dir, `${name}.crt`), 'utf8') };
}

let api: ApiHarness;
let apiUrl: string;
let certServer: Server;
let certUrl: string;
let certFetches = 0;
let keys: Record<'k1' | 'k2', KeyObject>;
const rogue = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
/** How often the example asked for its own token: a refused user token must never reach the API. */
let backendCalls = 0;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'firebase-keys-'));
  const k1 = certifiedKey(dir, 'k1');
  const k2 = certifiedKey(dir, 'k2');
  rmSync(dir, { recursive: true, force: true });
  keys = { k1: k1.key, k2: k2.key };
  certServer = createServer((_req, res) => {
    certFetches++;
    res.writeHead(200, { 'Content-Type': 'application/json; charset=UTF-8', 'Cache-Control': 'public, max-age=20000, must-revalidate' });
    res.end(JSON.stringify({ k1: k1.cert, k2: k2.cert }));
  });
  await new Promise<void>((r) => certServer.listen(0, '127.0.0.1', r));
  certUrl = `http://127.0.0.1:${(certServer.address() as AddressInfo).port}/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com`;
  api = await startApi();
  await new Promise<void>((r) => api.server.listen(0, '127.0.0.1', r));
  apiUrl = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
}, 120_000);

afterAll(async () => {
  await new Promise((r) => api.server.close(r));
  await new Promise((r) => certServer.close(r));
});

/** A Firebase ID token as Google signs them (RS256, kid k1); `claims` override, `undefined` drops a claim. */
function firebaseToken(claims: TokenClaims = {}, { key = keys.k1, kid = 'k1' }: { key?: KeyObject; kid?: string } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return signJwt(
    { alg: 'RS256', kid, typ: 'JWT' },
    {
      iss: ISSUER,
      aud: PROJECT,
      auth_time: now - 30,
      user_id: UID,
      sub: UID,
      iat: now - 20,
      exp: now + 3580,
      email: 'ada@example.com',
      email_verified: true,
      firebase: { identities: { email: ['ada@example.com'] }, sign_in_provider: 'password' },
      ...claims,
    },
    key,
  );
}

function loginApp(verifier: Partial<FirebaseVerifierOptions> = {}, backendIdToken = async () => api.admin.mint(AUDIENCE)) {
  const firebase = new FirebaseTokenVerifier({ projectId: PROJECT, certificates: googleCertificates(certUrl), ...verifier });
  return createLoginApp({
    verifyIdToken: (token) => firebase.verify(token),
    sessionApiUrl: apiUrl,
    backendIdToken: () => {
      backendCalls++;
      return backendIdToken();
    },
  });
}

/** A guest session with data: `language` survives a login (SESSION_PERSISTENT_FIELDS_ON_LOGIN), `cart` does not. */
async function guestSession(): Promise<string> {
  const first = await request(api.server).get('/session/security-key').expect(200);
  const cookie = cookieOf(first);
  let key = first.body.securityKey as string;
  for (const [name, value] of [
    ['language', 'de'],
    ['cart', ['book']],
  ] as const) {
    const put = await request(api.server)
      .put(`/session/data/${name}`)
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .type('json')
      .send(JSON.stringify(value));
    expect(put.status).toBe(200);
    key = put.headers['x-security-key'];
  }
  return cookie;
}

async function sessionOf(cookie: string) {
  const res = await request(api.server).get('/session').set('Cookie', cookie);
  return { status: res.status, body: res.body };
}

const GUEST = { status: 200, body: { user: null, data: { language: 'de', cart: ['book'] } } };

test('a valid token: 200, the session API binds the uid to the browser’s session, the cookie rotates', async () => {
  const app = loginApp();
  const cookie = await guestSession();
  const before = backendCalls;
  const res = await request(app)
    .post('/auth/login')
    .set('Authorization', `Bearer ${firebaseToken()}`)
    .set('Cookie', cookie)
    .set('User-Agent', BROWSER);
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ user: UID, data: { language: 'de' } });
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.headers['sec-x-viur-staticskey']).toMatch(/^\S{20,}$/);
  expect(backendCalls).toBe(before + 1);
  const rotated = cookieOf(res);
  expect(rotated).not.toBe(cookie);
  expect(rotated.split('=')[0]).toBe(cookie.split('=')[0]);
  // The new cookie names the user's session; the old one names an ended session.
  expect(await sessionOf(rotated)).toEqual({ status: 200, body: { user: UID, data: { language: 'de' } } });
  expect((await sessionOf(cookie)).body.error.code).toBe('session_ended');
  // The browser's User-Agent, forwarded, is what the device list shows.
  const devices = await request(api.server).get('/session/devices').set('Cookie', rotated).expect(200);
  expect(devices.body.devices).toEqual([expect.objectContaining({ current: true, userAgent: BROWSER })]);
});

test('the token in a JSON body works too, and a browser without a session gets a new one', async () => {
  const app = loginApp();
  const res = await request(app)
    .post('/auth/login')
    .send({ idToken: firebaseToken({}, { key: keys.k2, kid: 'k2' }) });
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ user: UID, data: {} });
  expect(await sessionOf(cookieOf(res))).toEqual({ status: 200, body: { user: UID, data: {} } });
});

test('the certificates are fetched once and kept for their max-age', async () => {
  const fetchesBefore = certFetches;
  const app = loginApp();
  for (let i = 0; i < 3; i++) await request(app).post('/auth/login').set('Authorization', `Bearer ${firebaseToken()}`).expect(200);
  expect(certFetches).toBe(fetchesBefore + 1);
});

describe('a token that is not a valid Firebase ID token of this project: 401, the API is never called, the session is unchanged', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const swapPayload = () => {
    const [header, , signature] = firebaseToken().split('.');
    const forged = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(firebaseToken().split('.')[1], 'base64url').toString()), sub: 'admin' }),
    );
    return `${header}.${forged.toString('base64url')}.${signature}`;
  };
  const hmacSigned = () => {
    // The classic confusion: HS256 "signed" with the public certificate as the secret.
    const body = `${Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'k1' })).toString('base64url')}.${firebaseToken().split('.')[1]}`;
    return `${body}.${createHmac('sha256', 'k1-certificate').update(body).digest('base64url')}`;
  };
  const cases: Array<[string, () => string, RegExp]> = [
    ['wrong signature (a key Google does not hold, under a kid it publishes)', () => firebaseToken({}, { key: rogue }), /signature/],
    ['a payload changed after signing (another sub)', swapPayload, /signature/],
    ['an unknown kid', () => firebaseToken({}, { key: rogue, kid: 'k9' }), /signature/],
    ['unsigned (alg none)', () => signJwt({ alg: 'none', kid: 'k1' }, { iss: ISSUER, aud: PROJECT, sub: UID }, null), /malformed/],
    ['HS256 with the public certificate as secret', hmacSigned, /RS256/],
    ['wrong iss', () => firebaseToken({ iss: 'https://accounts.google.com' }), /iss/],
    ['wrong aud', () => firebaseToken({ aud: 'another-project' }), /aud/],
    ['expired', () => firebaseToken({ auth_time: now() - 7300, iat: now() - 7200, exp: now() - 3600 }), /expired/],
    ['expired a minute ago', () => firebaseToken({ iat: now() - 3660, exp: now() - 60 }), /expired/],
    ['iat in the future', () => firebaseToken({ iat: now() + 600, exp: now() + 4200 }), /future/],
    ['auth_time in the future', () => firebaseToken({ auth_time: now() + 600 }), /sign-in time/],
    ['a lifetime of a day', () => firebaseToken({ exp: now() + 86400 }), /lifetime/],
    ['no auth_time', () => firebaseToken({ auth_time: undefined }), /auth_time/],
    ['missing sub', () => firebaseToken({ sub: undefined }), /sub/],
    ['empty sub', () => firebaseToken({ sub: '' }), /sub/],
    ['a sub longer than a uid may be', () => firebaseToken({ sub: 'u'.repeat(129) }), /sub/],
    [
      'a token of another Firebase project (signed by the same Google keys)',
      () => firebaseToken({ iss: 'https://securetoken.google.com/another-project', aud: 'another-project' }),
      /iss/,
    ],
    [
      'a token of an Identity Platform tenant',
      () => firebaseToken({ firebase: { sign_in_provider: 'password', tenant: 'tenant-a' } }),
      /tenant/,
    ],
    ['not a JWT', () => 'not-a-token', /malformed/],
  ];

  test.each(cases)('%s', async (_label, token, reason) => {
    const app = loginApp();
    const cookie = await guestSession();
    const before = backendCalls;
    const res = await request(app).post('/auth/login').set('Authorization', `Bearer ${token()}`).set('Cookie', cookie);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_token');
    expect(res.body.error.message).toMatch(reason);
    expect(res.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(backendCalls).toBe(before);
    expect(await sessionOf(cookie)).toEqual(GUEST);
  });
});

test('no token, or a token in a body that is not JSON (what a cross-site form can send): 401; broken JSON: 400; the session unchanged', async () => {
  const app = loginApp();
  const cookie = await guestSession();
  const before = backendCalls;
  const none = await request(app).post('/auth/login').set('Cookie', cookie);
  expect(none.status).toBe(401);
  expect(none.body.error.code).toBe('unauthenticated');
  expect(none.headers['www-authenticate']).toBe('Bearer');
  const form = await request(app)
    .post('/auth/login')
    .set('Cookie', cookie)
    .set('Content-Type', 'text/plain')
    .send(JSON.stringify({ idToken: firebaseToken() }));
  expect(form.status).toBe(401);
  const empty = await request(app).post('/auth/login').set('Cookie', cookie).set('Authorization', 'Bearer ').send({ idToken: '' });
  expect(empty.status).toBe(401);
  const broken = await request(app).post('/auth/login').set('Cookie', cookie).type('json').send('{"idToken": ');
  // 400 (here from the API's body reader, which hooks into every Express app of this process:
  // functions/http/body.ts; the example's own answer is checked against npm start below).
  expect(broken.status).toBe(400);
  for (const res of [none, form, empty, broken]) expect(res.headers['set-cookie']).toBeUndefined();
  expect(backendCalls).toBe(before);
  expect(await sessionOf(cookie)).toEqual(GUEST);
});

test('a valid token sent by another site (Sec-Fetch-Site: cross-site): 403, the session unchanged', async () => {
  const app = loginApp();
  const cookie = await guestSession();
  const res = await request(app)
    .post('/auth/login')
    .set('Authorization', `Bearer ${firebaseToken()}`)
    .set('Cookie', cookie)
    .set('Sec-Fetch-Site', 'cross-site');
  expect(res.status).toBe(403);
  expect(res.body.error.code).toBe('cross_site');
  expect(await sessionOf(cookie)).toEqual(GUEST);
});

test('options: a verified email required (403 without), one Identity Platform tenant, a recent sign-in', async () => {
  const cookie = await guestSession();
  const strict = loginApp({ requireVerifiedEmail: true });
  const unverified = await request(strict)
    .post('/auth/login')
    .set('Authorization', `Bearer ${firebaseToken({ email_verified: false })}`)
    .set('Cookie', cookie);
  expect(unverified.status).toBe(403);
  expect(unverified.body.error).toEqual({ code: 'forbidden', message: 'the email address is not verified' });
  expect(await sessionOf(cookie)).toEqual(GUEST);

  const tenant = loginApp({ tenantId: 'tenant-a' });
  const tenantToken = (name?: string) => firebaseToken({ firebase: { sign_in_provider: 'password', ...(name ? { tenant: name } : {}) } });
  expect(
    (
      await request(tenant)
        .post('/auth/login')
        .set('Authorization', `Bearer ${tenantToken('tenant-b')}`)
    ).status,
  ).toBe(401);
  expect((await request(tenant).post('/auth/login').set('Authorization', `Bearer ${tenantToken()}`)).status).toBe(401);
  expect(
    (
      await request(tenant)
        .post('/auth/login')
        .set('Authorization', `Bearer ${tenantToken('tenant-a')}`)
    ).body.user,
  ).toBe(UID);

  const recent = loginApp({ maxAuthAgeSeconds: 300 });
  const now = Math.floor(Date.now() / 1000);
  const old = await request(recent)
    .post('/auth/login')
    .set('Authorization', `Bearer ${firebaseToken({ auth_time: now - 86400 })}`);
  expect(old.status).toBe(401);
  expect(old.body.error.message).toMatch(/too old/);
  const fresh = await request(strict).post('/auth/login').set('Authorization', `Bearer ${firebaseToken()}`).set('Cookie', cookie);
  expect(fresh.body.user).toBe(UID);
});

test('the API refuses the backend’s own identity (another audience): 502, the session unchanged', async () => {
  const app = loginApp({}, async () => api.admin.mint('https://elsewhere.test'));
  const cookie = await guestSession();
  const res = await request(app).post('/auth/login').set('Authorization', `Bearer ${firebaseToken()}`).set('Cookie', cookie);
  expect(res.status).toBe(502);
  expect(res.body.error.code).toBe('bad_gateway');
  expect(res.headers['set-cookie']).toBeUndefined();
  expect(await sessionOf(cookie)).toEqual(GUEST);
});

test('the command line with --local --local-firebase: the launcher’s API and admin key, tokens from `mint`', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'firebase-login-state-'));
  writeLauncherState({
    ...{
      pid: process.pid,
      startedAt: new Date().toISOString(),
      stateDir,
      project: 'session-test',
      topic: 'session-kill',
      store: 'datastore',
    },
    ...{ apiUrl, killUrl: apiUrl, cleanupUrl: apiUrl, audience: AUDIENCE, adminEmail: ADMIN_EMAIL },
    ...{ jwksFile: api.admin.jwksFile, privateKeyFile: api.admin.privateKeyFile },
  });
  const env = { SESSION_LOCAL_STATE_DIR: stateDir };
  const minted = configure(['mint', '--uid', 'alice'], env);
  if (minted.command !== 'mint') throw new Error('not mint');
  const served = configure(['--local', '--local-firebase', '--port', '0'], env);
  if (served.command !== 'serve') throw new Error('not serve');
  expect(served.describe).toContain(`session API ${apiUrl}`);
  const res = await request(createLoginApp({ ...served.app, log: () => undefined }))
    .post('/auth/login')
    .set('Authorization', `Bearer ${minted.token}`)
    .expect(200);
  expect(res.body).toEqual({ user: 'alice', data: {} });
  expect(() => configure(['--local'], env)).toThrow(/FIREBASE_PROJECT_ID is required/);
  expect(() => configure([], { FIREBASE_PROJECT_ID: 'p' })).toThrow(/SESSION_API_URL is required/);
  rmSync(stateDir, { recursive: true, force: true });
});

describe('against npm start, as examples/firebase-login/README.md says', () => {
  let stack: Launcher;
  let outDir: string;

  beforeAll(async () => {
    stack = await startLauncher();
    outDir = mkdtempSync(join(tmpdir(), 'firebase-login-bundle-'));
  }, 90_000);

  afterAll(async () => {
    await stack?.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  test('the bundled example, a minted token and curl’s requests: alice is signed in', async () => {
    const readme = readFileSync(join(ROOT, 'examples', 'firebase-login', 'README.md'), 'utf8');
    const build =
      'npx esbuild examples/firebase-login/cli.ts --bundle --platform=node --packages=external --log-level=warning --outfile=.local/firebase-login.js';
    expect(readme).toContain(build);
    expect(readme).toContain('node .local/firebase-login.js --local --local-firebase');
    expect(readme).toContain('TOKEN=$(node .local/firebase-login.js mint --uid alice)');
    // The same build, written outside the work tree; NODE_PATH finds the repository's packages from there.
    const bundle = join(outDir, 'firebase-login.js');
    execFileSync(join(ROOT, 'node_modules', '.bin', 'esbuild'), [...build.split(' ').slice(2, -1), `--outfile=${bundle}`], { cwd: ROOT });
    const env: NodeJS.ProcessEnv = { ...process.env, SESSION_LOCAL_STATE_DIR: stack.stateDir, NODE_PATH: join(ROOT, 'node_modules') };
    delete env.FIREBASE_PROJECT_ID;
    const port = await freePort();
    const backend = spawn(process.execPath, [bundle, '--local', '--local-firebase', '--port', String(port)], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    backend.stdout.on('data', (b: Buffer) => (output += b.toString()));
    backend.stderr.on('data', (b: Buffer) => (output += b.toString()));
    try {
      for (let i = 0; i < 200 && !output.includes('/auth/login'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(output).toContain(`POST http://127.0.0.1:${port}/auth/login: Firebase project demo-session-local`);
      const token = execFileSync(process.execPath, [bundle, 'mint', '--uid', 'alice'], { env, encoding: 'utf8' }).trim();
      const guest = await fetch(`${stack.apiUrl}/session/security-key`);
      const cookie = guest.headers.get('set-cookie')!.split(';')[0];
      const login = await fetch(`http://127.0.0.1:${port}/auth/login`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, cookie },
      });
      expect(login.status).toBe(200);
      expect(await login.json()).toEqual({ user: 'alice', data: {} });
      const rotated = login.headers.get('set-cookie')!.split(';')[0];
      expect(await (await fetch(`${stack.apiUrl}/session`, { headers: { cookie: rotated } })).json()).toEqual({ user: 'alice', data: {} });
      const forged = await fetch(`http://127.0.0.1:${port}/auth/login`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token.slice(0, -4)}AAAA`, cookie: rotated },
      });
      expect(forged.status).toBe(401);
      const broken = await fetch(`http://127.0.0.1:${port}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"idToken": ',
      });
      expect([broken.status, await broken.json()]).toEqual([
        400,
        { error: { code: 'bad_request', message: 'the body is not valid JSON' } },
      ]);
      const inBody = await fetch(`http://127.0.0.1:${port}/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ idToken: token }),
      });
      expect([inBody.status, await inBody.json()]).toEqual([200, { user: 'alice', data: {} }]);
      for (let i = 0; i < 50 && !output.includes('POST /auth/login 401'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(output).toContain('POST /auth/login 401: the token signature is not valid');
    } finally {
      backend.kill('SIGINT');
    }
  }, 60_000);
});
