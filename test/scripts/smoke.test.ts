/**
 * `npm run smoke` against `npm start -- --emulators`: the Firestore (Datastore mode) and Pub/Sub
 * emulators, kills through a real topic and push subscription. The same script runs after an
 * apply against the deployed URLs (docs/deploy.md#smoke-test).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../../scripts/emulators';
import { userDigestCommand } from '../../scripts/user-digest';
import { derivedDigestKey, userDigest } from '../../lib/setup/log';
import { ensureBuilt, ROOT } from '../support/functionsFramework';
import { type Launcher, startLauncher } from '../support/launcher';

const SMOKE = join(ROOT, 'dist', 'scripts', 'smoke.js');

function smoke(args: string[]) {
  const env = { ...process.env };
  delete env.SMOKE_ID_TOKEN;
  const r = spawnSync(process.execPath, [SMOKE, ...args], { env, encoding: 'utf8', timeout: 150_000 });
  return { status: r.status, lines: r.stdout.trim().split('\n'), stderr: r.stderr };
}

let launcher: Launcher;

beforeAll(async () => {
  ensureBuilt();
  launcher = await startLauncher(['--emulators']);
}, 180_000);

afterAll(async () => {
  await launcher?.stop();
}, 30_000);

test('every step passes against npm start -- --emulators: health, a session round trip, a kill through the topic, the cleanup', () => {
  const r = smoke([launcher.apiUrl, '--token', launcher.adminToken, '--cleanup-url', `http://localhost:${launcher.ports.cleanup}/`]);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  expect(r.lines).toEqual([
    'ok    health: GET /healthz answered 200',
    'ok    session round trip: a value written to a new session was read back through the store; the session logged out',
    expect.stringMatching(/^ok {4}kill through the topic: the kill \(message \S+\) ended the session after \d+\.\d s$/),
    expect.stringMatching(/^ok {4}cleanup answering: the cleanup ran: \{.*"done":true/),
    'smoke test passed',
  ]);
}, 180_000);

test('without a token the kill is skipped, said so, and the rest still runs', () => {
  const r = smoke([launcher.apiUrl]);
  expect(r.status).toBe(0);
  expect(r.lines).toContainEqual(expect.stringMatching(/^skip {2}kill through the topic: no --token/));
  expect(r.lines).toContainEqual(expect.stringMatching(/^skip {2}cleanup answering: no --cleanup-url/));
}, 60_000);

test('a wrong token fails the kill step with the status; nothing listening fails health; both exit 1', async () => {
  const wrong = smoke([launcher.apiUrl, '--token', 'not-a-token']);
  expect(wrong.status).toBe(1);
  expect(wrong.lines).toContainEqual(
    expect.stringMatching(/^FAIL {2}kill through the topic: POST \/session\/login: expected 200, got 401/),
  );
  const nobody = smoke([`http://localhost:${await freePort()}`]);
  expect(nobody.status).toBe(1);
  expect(nobody.lines[0]).toMatch(/^FAIL {2}health: /);
  expect(nobody.lines[nobody.lines.length - 1]).toBe('smoke test failed: 2 step(s)');
}, 60_000);

test('a usage error exits 2', () => {
  const r = smoke(['not-a-url']);
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/usage: npm run smoke -- <api_url>/);
});

test('npm run user-digest computes the digest the kill lines carry, with the key given or derived from the project', () => {
  expect(userDigestCommand(['alice@example.com', '--key', 'k1'], {})).toEqual({
    digest: userDigest('alice@example.com', 'k1'),
    query: `jsonPayload.userDigest="${userDigest('alice@example.com', 'k1')}"`,
  });
  expect(userDigestCommand(['alice@example.com'], { SESSION_LOG_DIGEST_KEY: 'k1' }).digest).toBe(userDigest('alice@example.com', 'k1'));
  expect(userDigestCommand(['alice@example.com', '--project', 'p1'], {}).digest).toBe(
    userDigest('alice@example.com', derivedDigestKey('p1')),
  );
  expect(() => userDigestCommand(['alice@example.com'], {})).toThrow(/no key/);
  const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'scripts', 'user-digest.js'), 'alice@example.com', '--key', 'k1'], {
    encoding: 'utf8',
  });
  expect(r.stdout).toBe(`${userDigest('alice@example.com', 'k1')}\n`);
  expect(r.stdout).toMatch(/^[0-9a-f]{16}\n$/);
});
