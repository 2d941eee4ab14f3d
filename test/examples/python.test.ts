/**
 * examples/python/session_admin.py (standard library only) against the Pub/Sub emulator and the
 * API with a token signed by a local JWKS key, as a Python backend would use them.
 */
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { PubSub, Subscription } from '@google-cloud/pubsub';
import { AUDIENCE, startApi, type ApiHarness } from '../support/api';
import { ROOT } from '../support/functionsFramework';
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
