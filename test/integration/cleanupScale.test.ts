/**
 * The cleanup at a size that shows how it scales (6,000 expired sessions, pages of 200 on the
 * emulator): exactly the expired ones go, each key once, with the engine holding a bounded number
 * of keys whatever the backlog; and the engine's queries and commits get their own deadline, not
 * the request deadline. The 80,000-session run with default settings is in the bench
 * (bench/cleanup.ts, bench/RESULTS.md).
 */
import { Datastore } from '@google-cloud/datastore';
import { freePort } from '../../scripts/emulators';
import { expiredSelector } from '../../lib/jobs/batchDelete';
import { DatastoreSessionStore } from '../../lib/store/datastoreStore';
import { StoreUnavailableError } from '../../lib/core/errors';
import { setLogSink } from '../../lib/setup/log';
import { createRuntime } from '../../lib/setup/runtime';
import type { KeyPage, SessionSelector, StorageKey } from '../../lib/store/sessionStore';
import { runCleanup } from '../../lib/jobs/cleanup';
import { datastore, datastoreStore, FakeClock, testConfig, uniqueNamespace } from '../support/fixtures';
import { Relay } from '../support/relay';
import { existing, keyOf, matching, ObservedStore, seed, stored } from '../support/seed';

const T0 = Date.UTC(2026, 0, 1, 3, 0, 0);
const HOUR = 3600_000;

/** Counts the keys the engine has been handed and not yet seen deleted: what it holds. */
class HeldKeys extends ObservedStore {
  held = 0;
  maxHeld = 0;
  readonly deleted = new Set<StorageKey>();
  duplicates = 0;
  override async findKeys(selector: SessionSelector, limit: number, cursor?: string): Promise<KeyPage> {
    const page = await super.findKeys(selector, limit, cursor);
    this.held += page.keys.length;
    this.maxHeld = Math.max(this.maxHeld, this.held);
    return page;
  }
  override async deleteMany(keys: StorageKey[]): Promise<void> {
    await super.deleteMany(keys);
    this.held -= keys.length;
    for (const k of keys) {
      if (this.deleted.has(k)) this.duplicates++;
      this.deleted.add(k);
    }
  }
}

beforeAll(() => setLogSink(() => {}));
afterAll(() => setLogSink(null));

test('6,000 expired sessions: all deleted, each once, live and in-grace ones kept, never more than two pages of keys held', async () => {
  // A generous request deadline for the seeding (24 commits of 250): on a loaded machine 10 s is not always enough.
  const inner = datastoreStore(uniqueNamespace('scale'), datastore(), 60_000);
  const rows: Array<[string, ReturnType<typeof stored>]> = [];
  for (let i = 0; i < 6000; i++) rows.push([`x-${i}`, stored({ createdAt: T0 - 5 * HOUR, expiresAt: T0 - HOUR - i })]);
  for (let i = 0; i < 20; i++) rows.push([`grace-${i}`, stored({ createdAt: T0 - 2 * HOUR, expiresAt: T0 - 60_000 })]);
  for (let i = 0; i < 20; i++) rows.push([`live-${i}`, stored({ createdAt: T0 - HOUR, expiresAt: T0 + HOUR })]);
  await Promise.all(
    [0, 1, 2, 3].map((part) =>
      seed(
        inner,
        rows.filter((_, i) => i % 4 === part),
      ),
    ),
  );
  const store = new HeldKeys(inner);
  const config = testConfig({ SESSION_DELETE_BATCH_SIZE: '50', SESSION_DELETE_PARALLELISM: '4' });
  const rt = createRuntime(config, { store, clock: new FakeClock(T0) });

  const report = await runCleanup(rt, config.deletion.cleanupBudgetSeconds);

  expect(report).toMatchObject({ deleted: 6000, batches: 120, done: true });
  expect(store.deleted.size).toBe(6000);
  expect(store.duplicates).toBe(0);
  // One page is 50 × 4 keys; the next is fetched while the last commits of a page run.
  expect(store.findLimits.every((l) => l === 200)).toBe(true);
  expect(store.maxHeld).toBeLessThanOrEqual(2 * 200);
  // Followed by cursor: 30 full pages and the empty end, never a re-query from the start.
  expect(store.findLimits.length).toBeLessThanOrEqual(31);
  expect(await matching(inner, expiredSelector(T0, 300))).toEqual([]);
  const kept = rows.slice(6000).map(([l]) => keyOf(l));
  expect((await existing(inner, kept)).sort()).toEqual([...kept].sort());
}, 120_000);

test('the engine’s queries and commits get their own deadline, not the request deadline', async () => {
  const [host, port] = process.env.DATASTORE_EMULATOR_HOST!.split(':');
  // 150 ms each way: every call takes ≥ 300 ms, past a 200 ms request deadline.
  const relay = new Relay(await freePort(), { host: host, port: Number(port) }, 150);
  await relay.open();
  try {
    const namespace = uniqueNamespace('deadline');
    const slow = new DatastoreSessionStore({
      datastore: new Datastore({ projectId: process.env.GOOGLE_CLOUD_PROJECT, apiEndpoint: `127.0.0.1:${relay.port}` }),
      kind: 'viur-session',
      namespace,
      timeoutMs: 200,
      separateBegin: true,
    });
    const fast = datastoreStore(namespace);
    await seed(fast, [['slow-1', stored({ expiresAt: T0 - HOUR })]]);
    await expect(slow.get(keyOf('slow-1'))).rejects.toBeInstanceOf(StoreUnavailableError);
    const page = await slow.findKeys(expiredSelector(T0, 0), 10);
    expect(page.keys).toEqual([keyOf('slow-1')]);
    await slow.deleteMany(page.keys);
    expect(await fast.get(keyOf('slow-1'))).toBeNull();
  } finally {
    await relay.close();
  }
}, 60_000);
