/**
 * examples/python/session_admin.py (standard library only) against the Pub/Sub emulator and the
 * API with a token signed by a local JWKS key, as a Python backend would use them.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { PubSub, Subscription } from '@google-cloud/pubsub';
import { AUDIENCE, startApi, type ApiHarness } from '../support/api';
import { ROOT } from '../support/functionsFramework';
import { type Launcher, startLauncher } from '../support/launcher';
import { pubsub, pullTopic, receive, uniqueName } from '../support/pubsub';
import { type CommandRun, runCommand } from '../support/runCommand';

const SCRIPT = join(ROOT, 'examples', 'python', 'session_admin.py');

function python(args: string[], env: Record<string, string | undefined> = {}): Promise<CommandRun> {
  return runCommand('python3', [SCRIPT, ...args], { ...process.env, ...env });
}

let client: PubSub;
let topic: string;
let subscription: Subscription;
let api: ApiHarness;
let url: string;

beforeAll(async () => {
  client = pubsub();
  topic = uniqueName('python');
  ({ subscription } = await pullTopic(client, topic));
  api = await startApi({ SESSION_KILL_TOPIC: topic });
  await new Promise<void>((r) => api.server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(api.server.address() as AddressInfo).port}`;
}, 120_000);

afterAll(async () => {
  await new Promise((r) => api.server.close(r));
  const { closePublishers } = await import('../../lib/jobs/killPublisher');
  await closePublishers();
  await client.close();
});

test('publish-kill publishes the kill message through the Pub/Sub REST API of the emulator', async () => {
  const run = await python([
    'publish-kill',
    '--project',
    'session-test',
    '--topic',
    topic,
    '--users',
    'a, b',
    '--issued-at',
    '2026-01-01T12:00:00Z',
  ]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const [message] = await receive(subscription, 1);
  expect(message.id).toBe(run.stdout.trim());
  expect(JSON.parse(message.data.toString('utf8'))).toEqual({ users: ['a', 'b'], issuedAt: '2026-01-01T12:00:00Z' });
});

test('api-kill calls the privileged route with an ID token; a token for another audience is refused with the API’s error', async () => {
  const run = await python(['api-kill', '--api', url, '--user', 'alice'], { SESSION_ID_TOKEN: api.admin.mint(AUDIENCE) });
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const [message] = await receive(subscription, 1);
  expect(message.id).toBe(run.stdout.trim());
  expect(JSON.parse(message.data.toString('utf8'))).toEqual({ user: 'alice' });

  const refused = await python(['api-kill', '--api', url, '--guests'], { SESSION_ID_TOKEN: api.admin.mint('https://elsewhere.test') });
  expect(refused.code).toBe(1);
  expect(refused.stdout).toBe('');
  expect(refused.stderr).toMatch(/^session_admin: POST http:\/\/127\.0\.0\.1:\d+\/sessions\/kill answered 401 \(unauthenticated: .+\)\n$/);
});

describe('against npm start, as examples/python/README.md says', () => {
  let stack: Launcher;

  beforeAll(async () => {
    stack = await startLauncher();
  }, 90_000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('api-kill with a token from `npm run -s mint-token` ends the user’s session', async () => {
    const readme = readFileSync(join(ROOT, 'examples', 'python', 'README.md'), 'utf8');
    expect(readme).toContain(
      'SESSION_ID_TOKEN="$(npm run -s mint-token)" python3 examples/python/session_admin.py api-kill --api http://localhost:8080 --user alice',
    );
    const first = await fetch(`${stack.apiUrl}/session/security-key`);
    const login = await fetch(`${stack.apiUrl}/session/login`, {
      method: 'POST',
      headers: {
        cookie: first.headers.get('set-cookie')!.split(';')[0],
        authorization: `Bearer ${stack.adminToken}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ user: 'alice' }),
    });
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    // What `npm run -s mint-token` runs, pointed at this launcher's state directory.
    const env = { ...process.env, SESSION_LOCAL_STATE_DIR: stack.stateDir };
    const token = execFileSync(process.execPath, [join(ROOT, 'dist', 'scripts', 'mint-token.js')], { env, encoding: 'utf8' }).trim();
    const run = await python(['api-kill', '--api', stack.apiUrl, '--user', 'alice'], { SESSION_ID_TOKEN: token });
    expect({ stderr: run.stderr, code: run.code }).toEqual({ stderr: '', code: 0 });
    expect(run.stdout).toMatch(/^local-/);
    let session: unknown;
    for (let i = 0; i < 100; i++) {
      session = await (await fetch(`${stack.apiUrl}/session`, { headers: { cookie } })).json();
      if ((session as { user: unknown }).user === null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(session).toEqual({ user: null, data: {} });
  }, 60_000);
});
