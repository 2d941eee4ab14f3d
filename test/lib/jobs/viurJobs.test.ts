/**
 * Kill and cleanup in `viur` format on the Firestore emulator (Datastore mode), on entities in
 * exactly the shape a ViUR 3.8 app writes (test/support/viurFixtures.ts). Kill messages are run
 * through processKillMessage; the resweep messages they publish go to the Pub/Sub emulator and are
 * pulled and run the same way, as the kill function would.
 */
import type { PubSub, Subscription } from '@google-cloud/pubsub';
import { processKillMessage } from '../../../lib/jobs/kill';
import { runCleanup } from '../../../lib/jobs/cleanup';
import { closePublishers } from '../../../lib/jobs/killPublisher';
import { type KillMessage, parseKillMessageData } from '../../../lib/jobs/killMessage';
import { setLogSink } from '../../../lib/setup/log';
import { createRuntime, type Runtime } from '../../../lib/setup/runtime';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import { legacyUrlsafeKey } from '../../../lib/viur/userKey';
import { datastore, testConfig, uniqueNamespace } from '../../support/fixtures';
import { pubsub, pullTopic, receive, uniqueName } from '../../support/pubsub';
import { namesOf, putAll, viurSecurityKeyEntity, viurSessionEntity } from '../../support/viurFixtures';

const ds = datastore();
const PROJECT = 'session-test';
let client: PubSub;
let logs: Array<Record<string, unknown>> = [];

beforeAll(() => {
  client = pubsub();
  setLogSink((line) => logs.push(JSON.parse(line) as Record<string, unknown>));
});

afterAll(async () => {
  setLogSink(null);
  await closePublishers();
  await client.close();
});

interface Setup {
  rt: Runtime;
  namespace: string;
  subscription: Subscription;
  /** ViUR's stored user string of user/<name> in this namespace. */
  userString: (name: string) => string;
}

async function setup(env: Record<string, string> = {}): Promise<Setup> {
  logs = [];
  const namespace = uniqueNamespace('viurjobs');
  const topicName = uniqueName('viur-kill');
  const { subscription } = await pullTopic(client, topicName);
  const rt = createRuntime(
    testConfig({
      SESSION_FORMAT: 'viur',
      SESSION_NAMESPACE: namespace,
      SESSION_KILL_TOPIC: topicName,
      SESSION_DELETE_BATCH_SIZE: '50',
      ...env,
    }),
    { store: new MemorySessionStore() },
  );
  return {
    rt,
    namespace,
    subscription,
    userString: (name) => legacyUrlsafeKey({ projectId: PROJECT, namespace }, [{ kind: 'user', name }]),
  };
}

let sequence = 0;
const kill = (rt: Runtime, data: unknown) =>
  processKillMessage(rt, parseKillMessageData(JSON.stringify(data)), { messageId: `m-${++sequence}`, publishTime: Date.now() });

/** Pulls the follow-up messages the run published and runs each, as the kill function would, until none comes. */
async function drain(s: Setup, timeoutMs = 5_000): Promise<KillMessage[]> {
  const ran: KillMessage[] = [];
  for (;;) {
    let messages;
    try {
      messages = await receive(s.subscription, 1, timeoutMs);
    } catch {
      return ran;
    }
    for (const m of messages) {
      const message = parseKillMessageData(m.data);
      ran.push(message);
      await processKillMessage(s.rt, message, { messageId: m.id, publishTime: m.publishTime.getTime() });
    }
  }
}

describe('kill in viur format', () => {
  it('a key path ends exactly the sessions ViUR stored for that user, with their one-time keys', async () => {
    const s = await setup({ SESSION_VIUR_RESWEEP_SECONDS: '0' });
    const alice = Array.from({ length: 120 }, () =>
      viurSessionEntity(ds, s.namespace, {
        user: s.userString('alice'),
        userEntity: { path: ['user', 'alice'], properties: { name: 'alice' } },
      }),
    );
    const bob = viurSessionEntity(ds, s.namespace, { user: s.userString('bob') });
    const guest = viurSessionEntity(ds, s.namespace);
    const aliceKeys = alice
      .slice(0, 10)
      .map((a) => viurSecurityKeyEntity(ds, s.namespace, { session: a.cookie, until: Date.now() + 3_600_000 }));
    const others = [
      viurSecurityKeyEntity(ds, s.namespace, { session: bob.cookie, until: Date.now() + 3_600_000 }),
      viurSecurityKeyEntity(ds, s.namespace, { session: null, until: Date.now() + 3_600_000 }),
    ];
    await putAll(ds, [...alice, bob, guest, ...aliceKeys, ...others]);

    await kill(s.rt, { user: 'user/alice' });
    expect(await namesOf(ds, s.namespace, 'viur-session')).toEqual([bob.cookie, guest.cookie].sort());
    expect(await namesOf(ds, s.namespace, 'viur-securitykey')).toEqual(others.map((k) => k.name).sort());
    expect(logs.find((l) => l.message === 'kill finished')).toMatchObject({ deleted: 120, done: true });
    // The resweep found nothing written back.
    const followUps = await drain(s);
    expect(followUps.map((m) => m.kind)).toEqual(['resweep']);
    expect(logs.find((l) => l.message === 'resweep finished')).toMatchObject({ keys: 120, writtenBack: 0 });
  });

  it('an integer id (user/123), the stored string as is, __guest__ and null', async () => {
    const s = await setup({ SESSION_VIUR_RESWEEP_SECONDS: '0' });
    const byId = legacyUrlsafeKey({ projectId: PROJECT, namespace: s.namespace }, [{ kind: 'user', id: 123n }]);
    const numbered = viurSessionEntity(ds, s.namespace, { user: byId });
    const carol = viurSessionEntity(ds, s.namespace, { user: s.userString('carol') });
    const guests = [viurSessionEntity(ds, s.namespace), viurSessionEntity(ds, s.namespace)];
    const dave = viurSessionEntity(ds, s.namespace, { user: s.userString('dave') });
    await putAll(ds, [numbered, carol, ...guests, dave]);

    await kill(s.rt, { user: 'user/123' });
    await kill(s.rt, { user: s.userString('carol') });
    expect(await namesOf(ds, s.namespace, 'viur-session')).toEqual([...guests.map((g) => g.cookie), dave.cookie].sort());
    await kill(s.rt, { user: '__guest__' });
    expect(await namesOf(ds, s.namespace, 'viur-session')).toEqual([dave.cookie]);
    await kill(s.rt, { user: null });
    expect(await namesOf(ds, s.namespace, 'viur-session')).toEqual([]);
    await drain(s, 2_000);
  });

  it('a key path that cannot be converted is acknowledged without action', async () => {
    const s = await setup();
    const guest = viurSessionEntity(ds, s.namespace);
    await putAll(ds, [guest]);
    await kill(s.rt, { user: 'user/alice/extra' });
    expect(await namesOf(ds, s.namespace, 'viur-session')).toEqual([guest.cookie]);
    expect(logs.find((l) => l.message === 'malformed kill message acknowledged without action')).toMatchObject({
      code: 'invalid_key_path',
    });
  });

  it('no resurrection: ViUR requests that loaded a session before the kill put it back; the resweeps delete it for good', async () => {
    const s = await setup({ SESSION_VIUR_RESWEEP_SECONDS: '1' });
    const user = s.userString('mallory');
    const sessions = Array.from({ length: 12 }, () => viurSessionEntity(ds, s.namespace, { user }));
    const bystander = viurSessionEntity(ds, s.namespace, { user: s.userString('trent') });
    await putAll(ds, [...sessions, bystander]);

    // A browser per session, each request as ViUR's Session does it: load by key at the start (a
    // missing session is a fresh one, never written under the old key), save with a plain put at
    // the end, 0 to 600 ms later; then a pause before the next request. Every browser is in the
    // middle of a request when the kill runs.
    let stop = false;
    let writtenBack = 0;
    const browser = async (cookie: string) => {
      const key = ds.key({ namespace: s.namespace, path: ['viur-session', cookie] });
      while (!stop) {
        const [entity] = await ds.get(key);
        if (!entity) return;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 500));
        const copy = viurSessionEntity(ds, s.namespace, { cookie, user });
        await putAll(ds, [copy]);
        const [now] = await ds.get(key);
        if (now) writtenBack++;
        await new Promise((r) => setTimeout(r, Math.random() * 300));
      }
    };
    const browsers = sessions.map((e) => browser(e.cookie));
    await new Promise((r) => setTimeout(r, 150));

    await kill(s.rt, { user: 'user/mallory' });
    const followUps = await drain(s, 4_000);
    const survivors = await namesOf(ds, s.namespace, 'viur-session');
    stop = true;
    await Promise.all(browsers);

    expect(writtenBack).toBeGreaterThan(0); // the race happened: sessions did come back after the kill
    expect(survivors).toEqual([bystander.cookie]);
    expect(await namesOf(ds, s.namespace, 'viur-session')).toEqual([bystander.cookie]);
    expect(followUps.every((m) => m.kind === 'resweep')).toBe(true);
    const sweeps = logs.filter((l) => l.message === 'resweep finished');
    expect(sweeps.reduce((n, l) => n + Number(l.writtenBack), 0)).toBeGreaterThan(0);
    expect(sweeps.at(-1)).toMatchObject({ writtenBack: 0 });
  }, 60_000);
});

test('a resweep message reaching a native deployment is acknowledged without action', async () => {
  const s = await setup();
  const guest = viurSessionEntity(ds, s.namespace);
  await putAll(ds, [guest]);
  const native = createRuntime(testConfig({ SESSION_NAMESPACE: s.namespace }), { store: new MemorySessionStore() });
  await kill(native, { resweep: { keys: [guest.cookie], at: new Date().toISOString() } });
  expect(await namesOf(ds, s.namespace, 'viur-session')).toEqual([guest.cookie]);
  expect(logs.find((l) => l.message === 'resweep message ignored: it belongs to SESSION_FORMAT=viur')).toBeDefined();
});

describe('cleanup in viur format', () => {
  it('deletes what start_clear_sessions and periodic_clear_skeys delete, and nothing else', async () => {
    const s = await setup({ SESSION_LIFETIME_SECONDS: '3600' });
    const now = Date.now() / 1000;
    const gone = [
      viurSessionEntity(ds, s.namespace, { lastseen: now - 3600 - 301 }),
      viurSessionEntity(ds, s.namespace, { lastseen: Math.floor(now - 86400), user: s.userString('a') }),
    ];
    const kept = [
      viurSessionEntity(ds, s.namespace, { lastseen: now - 3600 - 200 }), // expired, but within ViUR's 300 s
      viurSessionEntity(ds, s.namespace, { lastseen: now }),
    ];
    const expiredKeys = [viurSecurityKeyEntity(ds, s.namespace, { session: null, until: Date.now() - 301_000 })];
    const keptKeys = [
      viurSecurityKeyEntity(ds, s.namespace, { session: kept[1].cookie, until: Date.now() + 60_000 }),
      viurSecurityKeyEntity(ds, s.namespace, { session: null, until: Date.now() - 100_000 }), // expired within the 300 s
    ];
    await putAll(ds, [...gone, ...kept, ...expiredKeys, ...keptKeys]);

    const report = await runCleanup(s.rt, 60);
    expect(report).toMatchObject({ deleted: 3, done: true });
    expect(await namesOf(ds, s.namespace, 'viur-session')).toEqual(kept.map((e) => e.cookie).sort());
    expect(await namesOf(ds, s.namespace, 'viur-securitykey')).toEqual(keptKeys.map((k) => k.name).sort());
  });

  it('a 20,000-session cleanup, in one run', async () => {
    const s = await setup({ SESSION_DELETE_BATCH_SIZE: '500', SESSION_LIFETIME_SECONDS: '3600' });
    const now = Date.now() / 1000;
    const stale = Array.from({ length: 20_000 }, (_, i) =>
      viurSessionEntity(ds, s.namespace, { lastseen: now - 7200 - i, data: { n: i } }),
    );
    const live = Array.from({ length: 50 }, () => viurSessionEntity(ds, s.namespace, { lastseen: now, data: {} }));
    await putAll(ds, [...stale, ...live]);
    const report = await runCleanup(s.rt, 600);
    expect(report).toMatchObject({ deleted: 20_000, done: true });
    expect(await namesOf(ds, s.namespace, 'viur-session')).toEqual(live.map((e) => e.cookie).sort());
  }, 300_000);
});
