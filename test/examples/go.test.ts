/**
 * examples/go (a module with `main`, standard library only) compiled with the machine's `go` (Debian's
 * golang-go, which .ci/run installs when missing) and run against the local stack: `publish-kill`
 * against the Pub/Sub emulator of the test run, `api-kill` against `npm start` with the token it
 * prints, where the kill really ends the user's session. Nothing is skipped: without `go` the test
 * fails and says how to install it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PubSub, Subscription } from '@google-cloud/pubsub';
import { ROOT } from '../support/functionsFramework';
import { type Launcher, startLauncher } from '../support/launcher';
import { pubsub, pullTopic, receive, uniqueName } from '../support/pubsub';
import { type CommandRun, runCommand } from '../support/runCommand';

const MODULE = join(ROOT, 'examples', 'go');
/** No module proxy and no toolchain download: the example must build from the standard library alone. */
const GO_ENV = { GOPROXY: 'off', GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local', GOWORK: 'off', CGO_ENABLED: '0' };

let binary: string;
let client: PubSub;
let topic: string;
let subscription: Subscription;

function sessionadmin(args: string[], env: Record<string, string | undefined> = {}): Promise<CommandRun> {
  return runCommand(binary, args, { ...process.env, ...env });
}

beforeAll(async () => {
  const version = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) {
    throw new Error(
      "the Go example needs `go` on PATH: install Debian's golang-go (apt-get install golang-go; .ci/run does it when go is missing)" +
        (version.error ? ` (${version.error.message})` : `\n${version.stderr}`),
    );
  }
  binary = join(mkdtempSync(join(tmpdir(), 'go-example-')), 'sessionadmin');
  for (const [what, args] of [
    ['go vet', ['vet', '.']],
    ['go build', ['build', '-o', binary, '.']],
  ] as const) {
    const r = spawnSync('go', [...args], { cwd: MODULE, env: { ...process.env, ...GO_ENV }, encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`${what} in examples/go failed (${version.stdout.trim()}):\n${r.stdout}${r.stderr}`);
  }
  client = pubsub();
  topic = uniqueName('go');
  ({ subscription } = await pullTopic(client, topic));
}, 360_000);

afterAll(async () => {
  await client?.close();
});

test('the module uses the standard library only: go.mod requires nothing', () => {
  const list = spawnSync('go', ['list', '-m', 'all'], { cwd: MODULE, env: { ...process.env, ...GO_ENV }, encoding: 'utf8' });
  expect(list.stdout.trim().split('\n')).toEqual(['viur-session-functions/examples/go']);
});

test('publish-kill publishes through the Pub/Sub REST API of the emulator: one user, a list with a cut-off, every session', async () => {
  const cases: Array<[string[], unknown]> = [
    [['--user', 'alice'], { user: 'alice' }],
    [['--users', 'a, b', '--issued-at', '2026-01-01T12:00:00Z'], { users: ['a', 'b'], issuedAt: '2026-01-01T12:00:00Z' }],
    [['--all'], { user: null }],
    [['--guests'], { user: '__guest__' }],
  ];
  for (const [args, data] of cases) {
    const run = await sessionadmin(['publish-kill', '--project', 'session-test', '--topic', topic, ...args]);
    expect({ args, stderr: run.stderr, code: run.code }).toEqual({ args, stderr: '', code: 0 });
    const [message] = await receive(subscription, 1);
    expect(message.id).toBe(run.stdout.trim());
    expect(JSON.parse(message.data.toString('utf8'))).toEqual(data);
  }
});

test('a wrong command line is refused with the usage (exit 2) and nothing is sent', async () => {
  const run = await sessionadmin(['publish-kill', '--project', 'session-test', '--topic', topic, '--user', 'a', '--all']);
  expect(run.code).toBe(2);
  expect(run.stdout).toBe('');
  expect(run.stderr).toMatch(/^sessionadmin: give exactly one of --user, --users, --guests, --all\nusage: sessionadmin publish-kill/);
});

describe('api-kill against npm start', () => {
  let stack: Launcher;

  beforeAll(async () => {
    stack = await startLauncher();
  }, 90_000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('with the token npm start prints, the kill ends the user’s session; a token that is none gets the API’s error (exit 1)', async () => {
    const first = await fetch(`${stack.apiUrl}/session/security-key`);
    const login = await fetch(`${stack.apiUrl}/session/login`, {
      method: 'POST',
      headers: {
        cookie: first.headers.get('set-cookie')!.split(';')[0],
        authorization: `Bearer ${stack.adminToken}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ user: 'gopher' }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    expect(await (await fetch(`${stack.apiUrl}/session`, { headers: { cookie } })).json()).toEqual({ user: 'gopher', data: {} });

    const run = await sessionadmin(['api-kill', '--api', stack.apiUrl, '--user', 'gopher'], { SESSION_ID_TOKEN: stack.adminToken });
    expect({ stderr: run.stderr, code: run.code }).toEqual({ stderr: '', code: 0 });
    expect(run.stdout).toMatch(/^local-[0-9a-f-]{36}\n$/);
    // npm start pushes the message to the kill function in the background: the session is gone shortly after.
    let session: unknown;
    for (let i = 0; i < 100; i++) {
      session = await (await fetch(`${stack.apiUrl}/session`, { headers: { cookie } })).json();
      if ((session as { user: unknown }).user === null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(session).toEqual({ user: null, data: {} });

    const refused = await sessionadmin(['api-kill', '--api', stack.apiUrl, '--guests'], { SESSION_ID_TOKEN: 'not-a-token' });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^sessionadmin: POST http:\/\/localhost:\d+\/sessions\/kill answered 401 \(unauthenticated: .+\)\n$/);
  }, 60_000);
});
