/**
 * The kill publisher: Pub/Sub (emulator) and the local push stand-in, which must be delivered to the
 * real killSessionByUser through functions-framework's conversion of push requests.
 */
import { spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import type { PubSub } from '@google-cloud/pubsub';
import '../../../functions/index';
import { MalformedKillMessageError } from '../../../lib/jobs/killMessage';
import { closePublishers, publisherFor, publishKill, pushPublisher } from '../../../lib/jobs/killPublisher';
import { setLogSink } from '../../../lib/setup/log';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import { createRuntime, setRuntime } from '../../../lib/setup/runtime';
import { testConfig } from '../../support/fixtures';
import { ensureBuilt, ROOT } from '../../support/functionsFramework';
import { pubsub, pullTopic, receive, uniqueName } from '../../support/pubsub';
import { eventually, existing, keyOf, seed, stored } from '../../support/seed';

let client: PubSub;
const logs: Array<Record<string, unknown>> = [];

beforeAll(() => {
  client = pubsub();
  setLogSink((line) => logs.push(JSON.parse(line) as Record<string, unknown>));
});

afterAll(async () => {
  setLogSink(null);
  setRuntime(undefined);
  await closePublishers();
  await client.close();
});

test('publishKill publishes the kill JSON and returns the message id', async () => {
  const topic = uniqueName('pub');
  const { subscription } = await pullTopic(client, topic);
  const id = await publishKill({ users: ['a', 'b'] }, { topic, projectId: 'session-test', issuedAt: new Date('2026-02-03T04:05:06Z') });
  const [message] = await receive(subscription, 1);
  expect(message.id).toBe(id);
  expect(JSON.parse(message.data.toString())).toEqual({ users: ['a', 'b'], issuedAt: '2026-02-03T04:05:06.000Z' });
});

test('publisherFor(config) publishes on SESSION_KILL_TOPIC and keeps one client per destination', async () => {
  const topic = uniqueName('pub');
  const { subscription } = await pullTopic(client, topic);
  const config = testConfig({ SESSION_KILL_TOPIC: topic });
  const publisher = publisherFor(config);
  expect(publisherFor(config)).toBe(publisher);
  const ids = [await publisher({ user: null }), await publisher.publishKill({ user: '__guest__' })];
  const messages = await receive(subscription, 2);
  expect(messages.map((m) => m.id).sort()).toEqual([...ids].sort());
  expect(messages.map((m) => JSON.parse(m.data.toString()) as unknown)).toEqual(
    expect.arrayContaining([{ user: null }, { user: '__guest__' }]),
  );
});

test('an invalid target is refused before anything is sent', async () => {
  const publisher = publisherFor(testConfig({ SESSION_KILL_TOPIC: uniqueName('never') }));
  await expect(publisher({ user: '' })).rejects.toBeInstanceOf(MalformedKillMessageError);
  await expect(publisher({ users: [] })).rejects.toBeInstanceOf(MalformedKillMessageError);
});

test('SESSION_KILL_PUSH_URL: a push request reaches killSessionByUser under functions-framework, which kills', async () => {
  const store = new MemorySessionStore();
  const now = Date.now();
  await seed(store, [
    ['p-1', stored({ user: 'p', createdAt: now - 60_000 })],
    ['q-1', stored({ user: 'q', createdAt: now - 60_000 })],
  ]);
  const server = getTestServer('killSessionByUser');
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const { port } = server.address() as AddressInfo;
    const topic = uniqueName('local');
    const config = testConfig({
      SESSION_STORE: 'memory',
      SESSION_KILL_TOPIC: topic,
      SESSION_KILL_PUSH_URL: `http://127.0.0.1:${port}/projects/local/topics/${topic}`,
    });
    setRuntime(createRuntime(config, { store }));
    const publisher = publisherFor(config);
    const id = await publisher({ user: 'p' });
    expect(id).toMatch(/^local-/);
    await publisher.close();
    await eventually('the kill', () => logs.some((l) => l.message === 'kill finished' && l.messageId === id));
    expect(await existing(store, [keyOf('p-1'), keyOf('q-1')])).toEqual([keyOf('q-1')]);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('a failed local push is retried, then given up with an error log', async () => {
  const publisher = pushPublisher({ projectId: 'local', topic: 'kill', url: 'http://127.0.0.1:9/projects/local/topics/kill' });
  const id = await publisher({ user: 'nobody' });
  await publisher.close();
  expect(logs.filter((l) => l.messageId === id && l.message === 'local kill push failed')).toHaveLength(5);
  expect(logs.filter((l) => l.messageId === id && l.message === 'local kill push given up')).toEqual([
    expect.objectContaining({ severity: 'ERROR' }),
  ]);
}, 30_000);

test('loading the functions module loads neither the Pub/Sub nor the Datastore client (cold start)', () => {
  ensureBuilt();
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      "require('./dist/functions/index.js'); const l = Object.keys(require.cache); console.log(JSON.stringify({ pubsub: l.some((k) => k.includes('@google-cloud/pubsub')), datastore: l.some((k) => k.includes('@google-cloud/datastore')) }))",
    ],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, GOOGLE_CLOUD_PROJECT: 'session-test' } },
  );
  expect(probe.status).toBe(0);
  expect(JSON.parse(probe.stdout.trim().split('\n').pop()!)).toEqual({ pubsub: false, datastore: false });
});
