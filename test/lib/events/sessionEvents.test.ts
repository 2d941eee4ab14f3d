import type { OutboxRecord, SessionEvent } from '../../../lib/core/events';
import { deviceHandle } from '../../../lib/core/devices';
import { cryptoRandom, digest } from '../../../lib/core/ids';
import { SessionManager } from '../../../lib/core/manager';
import type { EventPublisher } from '../../../lib/events/publisher';
import { EventRelay } from '../../../lib/events/relay';
import { runCleanup } from '../../../lib/jobs/cleanup';
import { processKillMessage } from '../../../lib/jobs/kill';
import { createRuntime } from '../../../lib/setup/runtime';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import type { SessionStore } from '../../../lib/store/sessionStore';
import { cookieFrom, countRpcs, datastoreStore, FakeClock, settings, testConfig, uniqueNamespace } from '../../support/fixtures';

/*
 * Session events (docs/events.md) as the session logic records them: which change produces which
 * event with which user and device handle, the outbox they go through, and that with events off
 * nothing of it is written. The crash between commit and publish, on the emulators, is in
 * test/reliability/eventOutbox.test.ts.
 */

/** A publisher that keeps what it is given (or fails while `failing` is set): the relay's other side. */
class CollectingPublisher implements EventPublisher {
  readonly events: SessionEvent[] = [];
  failing = false;
  async publish(events: readonly SessionEvent[]): Promise<void> {
    if (this.failing) throw new Error('publish failed');
    this.events.push(...events);
  }
  async close(): Promise<void> {}
}

function setup(overrides: Parameters<typeof settings>[0] = {}) {
  const store = new MemorySessionStore();
  const clock = new FakeClock();
  const publisher = new CollectingPublisher();
  const relay = new EventRelay({ store, publisher, clock, settleMs: 0 });
  const m = new SessionManager({ store, settings: settings(overrides), clock, random: cryptoRandom, events: relay });
  return { store, clock, publisher, relay, m };
}

const handleOf = (cookie: string) => deviceHandle(digest(cookie.split('=')[1]));
const shape = (events: SessionEvent[]) => events.map(({ type, reason, user, device }) => ({ type, reason, user, device }));

async function login(m: SessionManager, user: string, cookie?: string): Promise<string> {
  const { outcome } = await m.withSession(cookie, (s) => s.login(user));
  return cookieFrom(outcome.setCookie);
}

describe('what each change records', () => {
  test('created, login, logout and reset: the user and the device handle, never the session id or key', async () => {
    const { m, publisher, store, relay } = setup();
    const { outcome } = await m.withSession(undefined, (s) => s.set('cart', 1));
    const guest = cookieFrom(outcome.setCookie);
    const alice = await login(m, 'alice', guest);
    const { outcome: out } = await m.withSession(alice, (s) => s.logout());
    const afterLogout = out.setCookie ? cookieFrom(out.setCookie) : undefined;
    const bob = await login(m, 'bob');
    await m.withSession(bob, (s) => s.reset());
    await relay.idle();
    expect(shape(publisher.events)).toEqual([
      { type: 'created', user: null, device: handleOf(guest) },
      { type: 'login', user: 'alice', device: handleOf(alice) },
      { type: 'logout', user: 'alice', device: handleOf(alice) },
      { type: 'created', user: 'bob', device: handleOf(bob) },
      { type: 'login', user: 'bob', device: handleOf(bob) },
      { type: 'reset', user: 'bob', device: handleOf(bob) },
    ]);
    const text = JSON.stringify(publisher.events);
    for (const cookie of [guest, alice, bob, afterLogout]) {
      const id = cookie?.split('=')[1];
      if (!id) continue;
      expect(text).not.toContain(id);
      expect(text).not.toContain(digest(id));
    }
    // Every event has its own id and the commit's time; the outbox is empty once published.
    expect(new Set(publisher.events.map((e) => e.id)).size).toBe(publisher.events.length);
    expect(publisher.events[0].time).toBe('2026-01-01T00:00:00.000Z');
    expect(await store.pendingOutbox(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
  });

  test('a read or a change that keeps the session records nothing', async () => {
    const { m, publisher, relay } = setup();
    const alice = await login(m, 'alice');
    publisher.events.length = 0;
    await m.withSession(alice, (s) => s.set('language', 'de'));
    await m.load(alice);
    await relay.idle();
    expect(publisher.events).toEqual([]);
  });

  test('ended: device, logout_others, cap and admin, each with the ended session’s user and handle', async () => {
    const { m, publisher, relay, clock } = setup({ maxSessionsPerUser: 3 });
    const a = [await login(m, 'alice'), await login(m, 'alice'), await login(m, 'alice')];
    publisher.events.length = 0;
    // The device route: withSession ending another session in its commit.
    await m.withSession(a[0], () => undefined, { end: { user: 'alice', keys: [digest(a[1].split('=')[1])], reason: 'device' } });
    // An admin route.
    expect(await m.endSession('alice', handleOf(a[2]), { reason: 'admin' })).toBe(true);
    // The cap: three more logins end the least recently used one.
    const more: string[] = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(120_000); // past the sign-in precedence: a[0] is the least recently used
      more.push(await login(m, 'alice'));
    }
    const current = await m.load(more[2]);
    expect(await m.endOtherSessions(current)).toBe(2);
    await relay.idle();
    const ended = shape(publisher.events.filter((e) => e.type === 'ended'));
    expect(ended).toEqual([
      { type: 'ended', reason: 'device', user: 'alice', device: handleOf(a[1]) },
      { type: 'ended', reason: 'admin', user: 'alice', device: handleOf(a[2]) },
      { type: 'ended', reason: 'cap', user: 'alice', device: handleOf(a[0]) },
      expect.objectContaining({ type: 'ended', reason: 'logout_others', user: 'alice' }),
      expect.objectContaining({ type: 'ended', reason: 'logout_others', user: 'alice' }),
    ]);
    expect(new Set(ended.slice(3).map((e) => e.device))).toEqual(new Set([handleOf(more[0]), handleOf(more[1])]));
  });

  test('the kill job records ended/kill and the cleanup expired, each with the user and handle, guests as null', async () => {
    const store = new MemorySessionStore();
    const clock = new FakeClock();
    const publisher = new CollectingPublisher();
    const relay = new EventRelay({ store, publisher, clock, settleMs: 0 });
    const rt = createRuntime(testConfig({ SESSION_STORE: 'memory' }), { store, clock, events: relay });
    const alice = await login(rt.sessions, 'alice');
    const { outcome } = await rt.sessions.withSession(undefined, (s) => s.set('x', 1));
    const guest = cookieFrom(outcome.setCookie);
    const bob = await login(rt.sessions, 'bob');
    publisher.events.length = 0;
    await processKillMessage(
      rt,
      { kind: 'kill', user: 'alice', issuedAt: undefined, continuation: 0 },
      { messageId: 'm-1', publishTime: clock.now() },
    );
    clock.advance(2 * 24 * 3600 * 1000);
    await runCleanup(rt, 60);
    await relay.idle();
    expect(shape(publisher.events).sort((x, y) => x.type.localeCompare(y.type) || String(x.user).localeCompare(String(y.user)))).toEqual([
      { type: 'ended', reason: 'kill', user: 'alice', device: handleOf(alice) },
      { type: 'expired', user: 'bob', device: handleOf(bob) },
      { type: 'expired', user: null, device: handleOf(guest) },
    ]);
  });
});

describe('the outbox', () => {
  test('with events off nothing is recorded: no outbox record, whatever the change', async () => {
    const store = new MemorySessionStore();
    const m = new SessionManager({ store, settings: settings({ maxSessionsPerUser: 1 }), clock: new FakeClock(), random: cryptoRandom });
    const a = await login(m, 'alice');
    await login(m, 'alice');
    await m.withSession(a, (s) => s.logout()).catch(() => undefined);
    expect(await store.pendingOutbox(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
  });

  test('a failed publish leaves the record in the outbox; a later relay publishes it and empties the outbox', async () => {
    const { m, publisher, store, relay, clock } = setup();
    publisher.failing = true;
    await login(m, 'alice');
    await relay.idle();
    const pending = await store.pendingOutbox(Number.MAX_SAFE_INTEGER, 10);
    expect(pending.map((r) => r.events.map((e) => e.type))).toEqual([['created', 'login']]);
    publisher.failing = false;
    clock.advance(1);
    expect(await relay.relay()).toEqual({ records: 1, events: 2, done: true });
    expect(publisher.events.map((e) => e.id)).toEqual(pending[0].events.map((e) => e.id));
    expect(await store.pendingOutbox(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
  });

  test('the relay leaves records younger than settleMs to the request that wrote them', async () => {
    const store = new MemorySessionStore();
    const clock = new FakeClock();
    const publisher = new CollectingPublisher();
    const relay = new EventRelay({ store, publisher, clock, settleMs: 30_000 });
    const record: OutboxRecord = { id: 'r1', createdAt: clock.now(), events: [] };
    await store.deleteMany([], record);
    expect(await relay.relay()).toEqual({ records: 0, events: 0, done: true });
    clock.advance(30_001);
    expect(await relay.relay()).toEqual({ records: 1, events: 0, done: true });
  });

  test.each([
    ['MemorySessionStore', () => new MemorySessionStore()],
    ['DatastoreSessionStore (emulator)', () => datastoreStore(uniqueNamespace('relays'))],
  ] as Array<[string, () => SessionStore]>)(
    '%s: two relays at once lose nothing and leave nothing; every event is published at least once',
    async (_, make) => {
      const store = make();
      const clock = new FakeClock();
      const publisher = new CollectingPublisher();
      const ids: string[] = [];
      // More than one page (100) of records.
      for (let i = 0; i < 130; i++) {
        const record: OutboxRecord = {
          id: `r${i}`,
          createdAt: clock.now() - 60_000 + i,
          events: [{ id: `r${i}.0`, type: 'expired', user: null, device: 'd', time: new Date(clock.now()).toISOString() }],
        };
        ids.push(`r${i}.0`);
        await store.deleteMany([], record);
      }
      const relays = [0, 1].map(() => new EventRelay({ store, publisher, clock }));
      const reports = await Promise.all(relays.map((r) => r.relay()));
      expect(reports.every((r) => r.done)).toBe(true);
      expect(new Set(publisher.events.map((e) => e.id))).toEqual(new Set(ids));
      expect(await store.pendingOutbox!(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
    },
  );
});

describe('what events cost on Datastore', () => {
  test('one more commit per change (the record’s delete after its publish); a new session’s first write becomes a transaction', async () => {
    const rpcs = countRpcs();
    const costs: Record<string, unknown> = {};
    try {
      for (const on of [false, true]) {
        const store = datastoreStore(uniqueNamespace('cost'));
        const clock = new FakeClock(Date.now());
        const relay = new EventRelay({ store, publisher: new CollectingPublisher(), clock });
        const m = new SessionManager({ store, settings: settings(), clock, random: cryptoRandom, ...(on ? { events: relay } : {}) });
        await login(m, 'warm-up'); // the instance's first relay runs once, in the background
        await relay.idle();
        rpcs.reset();
        const { outcome } = await m.withSession(undefined, (s) => s.set('cart', 1));
        costs[`new session, events ${on ? 'on' : 'off'}`] = { ...rpcs.counts };
        rpcs.reset();
        await login(m, 'alice', cookieFrom(outcome.setCookie));
        costs[`login, events ${on ? 'on' : 'off'}`] = { ...rpcs.counts };
      }
    } finally {
      rpcs.restore();
    }
    // The tests' store opens transactions with their own beginTransaction (the emulator's need).
    expect(costs).toEqual({
      'new session, events off': { commit: 1 },
      'new session, events on': { beginTransaction: 1, commit: 2 },
      'login, events off': { beginTransaction: 1, lookup: 1, commit: 1 },
      'login, events on': { beginTransaction: 1, lookup: 1, commit: 2 },
    });
  });
});
