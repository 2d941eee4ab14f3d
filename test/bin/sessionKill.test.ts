/** The session-kill CLI (compiled, as `npm install -g` or `npx` would run it) against the Pub/Sub emulator. */
import { join } from 'node:path';
import type { PubSub, Subscription } from '@google-cloud/pubsub';
import { ensureBuilt, ROOT } from '../support/functionsFramework';
import { pubsub, pullTopic, receive, uniqueName } from '../support/pubsub';
import { type CommandRun, runCommand } from '../support/runCommand';

const CLI = join(ROOT, 'dist', 'bin', 'session-kill.js');

type Run = CommandRun;

function run(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return runCommand(process.execPath, [CLI, ...args], { ...process.env, METADATA_SERVER_DETECTION: 'none', ...env });
}

let client: PubSub;
let topic: string;
let subscription: Subscription;

beforeAll(async () => {
  ensureBuilt();
  client = pubsub();
  topic = uniqueName('cli');
  ({ subscription } = await pullTopic(client, topic));
}, 180_000);

afterAll(async () => {
  await client.close();
});

async function publishedBy(args: string[], env: Record<string, string | undefined> = {}): Promise<{ id: string; data: unknown }> {
  const result = await run(args, env);
  expect(result).toMatchObject({ code: 0, stderr: '' });
  const id = result.stdout.trim();
  expect(id).toMatch(/^\S+$/);
  const [message] = await receive(subscription, 1);
  expect(message.id).toBe(id);
  return { id, data: JSON.parse(message.data.toString('utf8')) };
}

test('--user publishes {"user": id} and prints the message id', async () => {
  expect((await publishedBy(['--user', 'alice', '--topic', topic, '--project', 'session-test'])).data).toEqual({ user: 'alice' });
});

test('--guests, --all, --users and --issued-at; project and topic from the environment', async () => {
  const env = { GOOGLE_CLOUD_PROJECT: 'session-test', SESSION_KILL_TOPIC: topic };
  expect((await publishedBy(['--guests'], env)).data).toEqual({ user: '__guest__' });
  expect((await publishedBy(['--all', '--issued-at', '2026-01-01T12:00:00+01:00'], env)).data).toEqual({
    user: null,
    issuedAt: '2026-01-01T11:00:00.000Z',
  });
  expect((await publishedBy(['--users', 'a, b,c'], env)).data).toEqual({ users: ['a', 'b', 'c'] });
});

test.each([
  ['no target', []],
  ['two targets', ['--user', 'a', '--all']],
  ['--guests with --users', ['--guests', '--users', 'a']],
  ['an unknown option', ['--user', 'a', '--force']],
  ['a positional argument', ['alice']],
  ['--user without a value', ['--user']],
  ['an empty user', ['--user', '']],
  ['an empty --users list', ['--users', ' , ']],
  ['a user over 500 bytes', ['--user', 'x'.repeat(501)]],
  ['a date that is not ISO 8601', ['--user', 'a', '--issued-at', 'yesterday']],
  ['a bad topic id', ['--user', 'a', '--topic', 'no spaces']],
])('%s: usage on stderr, exit code 2, nothing published', async (_case, args) => {
  const result = await run([...args, '--project', 'session-test', ...(args.includes('--topic') ? [] : ['--topic', topic])]);
  expect(result.code).toBe(2);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^session-kill: [^]+?\n\nusage: session-kill/);
});

test('no project anywhere is a usage error', async () => {
  const result = await run(['--user', 'a', '--topic', topic], { GOOGLE_CLOUD_PROJECT: '', GCLOUD_PROJECT: '' });
  expect(result.code).toBe(2);
  expect(result.stderr).toContain('no project');
});

test('--help prints the usage on stdout with exit code 0', async () => {
  const result = await run(['--help']);
  expect(result).toMatchObject({ code: 0, stderr: '' });
  expect(result.stdout).toMatch(/^usage: session-kill/);
});

test('nothing was published by the failed invocations', async () => {
  // A marker published last must be the next message: the usage errors left nothing in between.
  expect((await publishedBy(['--user', 'marker', '--topic', topic, '--project', 'session-test'])).data).toEqual({ user: 'marker' });
});

test('a publish failure (no such topic) exits 1 with a message', async () => {
  const result = await run(['--user', 'a', '--topic', uniqueName('missing'), '--project', 'session-test']);
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^session-kill: publishing to .+ failed/);
}, 60_000);

describe('SESSION_FORMAT=viur', () => {
  test('a key path is published as given, for the function to convert', async () => {
    const { data } = await publishedBy(['--user', 'user/alice', '--project', 'session-test', '--topic', topic], { SESSION_FORMAT: 'viur' });
    expect(data).toEqual({ user: 'user/alice' });
  });

  test('a key path that cannot be converted is a usage error, nothing is published', async () => {
    const result = await run(['--user', 'user/alice/x', '--project', 'session-test', '--topic', topic], { SESSION_FORMAT: 'viur' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/key path/);
  });
});
