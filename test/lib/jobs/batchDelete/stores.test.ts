import { batchDelete, expiredSelector, killSelector, type BatchProgress } from '../../../../lib/jobs/batchDelete';
import { StoreUnavailableError } from '../../../../lib/core/errors';
import { MemorySessionStore } from '../../../../lib/store/memoryStore';
import { GUEST_USER } from '../../../../lib/core/limits';
import type { SessionStore } from '../../../../lib/store/sessionStore';
import { datastore, datastoreStore, FakeClock, uniqueNamespace } from '../../../support/fixtures';
import { existing, keyOf, matching, ObservedStore, seed, stored } from '../../../support/seed';

/*
 * batchDelete on real stores, the memory store and the Datastore emulator alike: what is deleted and
 * what is kept, commit sizes, budgets, retries and re-runs. The engine's own behaviour, on a memory
 * store without emulators, is in engine.test.ts.
 */

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3600_000;

/** n expired sessions (expiresAt before T0) and m live ones; labels say which. */
async function expiredAndLive(store: SessionStore, n: number, m: number): Promise<{ expired: string[]; live: string[] }> {
  const rows: Array<[string, ReturnType<typeof stored>]> = [];
  for (let i = 0; i < n; i++) rows.push([`expired-${i}`, stored({ createdAt: T0 - 3 * HOUR, expiresAt: T0 - HOUR - i })]);
  for (let i = 0; i < m; i++) rows.push([`live-${i}`, stored({ createdAt: T0 - HOUR, expiresAt: T0 + HOUR + i })]);
  await seed(store, rows);
  return { expired: rows.slice(0, n).map(([l]) => keyOf(l)), live: rows.slice(n).map(([l]) => keyOf(l)) };
}

const stores: Array<[string, () => SessionStore]> = [
  ['memory store', () => new MemorySessionStore()],
  // A generous request deadline: the checks read ~1,250 sessions at once, which overran 10 s on a loaded machine.
  ['Datastore emulator store', () => datastoreStore(uniqueNamespace('batch'), datastore(), 60_000)],
];

describe.each(stores)('batchDelete on the %s', (_name, make) => {
  let inner: SessionStore;
  let store: ObservedStore;
  let clock: FakeClock;
  beforeEach(() => {
    inner = make();
    store = new ObservedStore(inner);
    clock = new FakeClock(T0);
  });

  test('deletes exactly the matching sessions in commits of at most batchSize, at most `parallelism` at once', async () => {
    const { expired, live } = await expiredAndLive(inner, 1234, 20);
    const progress: BatchProgress[] = [];
    const report = await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 100,
      parallelism: 3,
      deadline: T0 + HOUR,
      clock,
      onBatch: (p) => progress.push(p),
    });
    expect(report).toEqual({ deleted: 1234, batches: 13, done: true, elapsedMs: 0 });
    expect(Math.max(...store.deleteSizes)).toBeLessThanOrEqual(100);
    expect(store.deleteSizes.reduce((a, b) => a + b, 0)).toBe(1234);
    expect(store.maxInFlight).toBeLessThanOrEqual(3);
    // Pages are bounded by batchSize × parallelism: keys are never accumulated beyond that.
    expect(store.findLimits.every((l) => l === 300)).toBe(true);
    expect(progress).toHaveLength(13);
    expect(progress.at(-1)).toMatchObject({ deleted: 1234, batches: 13 });
    expect(await existing(inner, expired)).toEqual([]);
    expect((await existing(inner, live)).sort()).toEqual([...live].sort());
  });

  test('with the default batch size, 1,200 sessions go in commits of at most 500', async () => {
    await expiredAndLive(inner, 1200, 0);
    const report = await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 500,
      parallelism: 4,
      deadline: T0 + HOUR,
      clock,
    });
    expect(report).toMatchObject({ deleted: 1200, batches: 3, done: true });
    expect([...store.deleteSizes].sort((a, b) => a - b)).toEqual([200, 500, 500]);
  });

  test('a kill selector removes one user’s sessions created at or before the cut-off, nothing else', async () => {
    const rows: Array<[string, ReturnType<typeof stored>]> = [
      ['a-1', stored({ user: 'a', createdAt: T0 - HOUR })],
      ['a-2', stored({ user: 'a', createdAt: T0 })],
      ['a-later', stored({ user: 'a', createdAt: T0 + 1 })],
      ['b-1', stored({ user: 'b', createdAt: T0 - HOUR })],
      ['guest-1', stored({ user: null, createdAt: T0 - HOUR })],
    ];
    await seed(inner, rows);
    const report = await batchDelete({
      store,
      selector: killSelector('a', T0),
      batchSize: 500,
      parallelism: 2,
      deadline: T0 + HOUR,
      clock,
    });
    expect(report).toMatchObject({ deleted: 2, done: true });
    expect(
      (
        await existing(
          inner,
          rows.map(([l]) => keyOf(l)),
        )
      ).sort(),
    ).toEqual([keyOf('a-later'), keyOf('b-1'), keyOf('guest-1')].sort());
    await batchDelete({ store, selector: killSelector(GUEST_USER, T0), batchSize: 500, parallelism: 2, deadline: T0 + HOUR, clock });
    expect(await existing(inner, [keyOf('guest-1')])).toEqual([]);
  });

  test('stops cleanly when the budget is spent; re-running the selector deletes exactly what is left', async () => {
    const { expired, live } = await expiredAndLive(inner, 100, 5);
    // Every query costs 400 ms of (fake) time: the budget of 1 s allows three queries.
    store.beforeFind = () => clock.advance(400);
    const first = await batchDelete({ store, selector: expiredSelector(T0, 0), batchSize: 5, parallelism: 4, deadline: T0 + 1000, clock });
    expect(first).toEqual({ deleted: 40, batches: 8, done: false, elapsedMs: 1200 });
    expect(await matching(inner, expiredSelector(T0, 0))).toHaveLength(60);

    store.beforeFind = () => {};
    const rest = await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 5,
      parallelism: 4,
      deadline: clock.now() + 1000,
      clock,
    });
    expect(rest).toMatchObject({ deleted: 60, done: true });
    expect(await existing(inner, expired)).toEqual([]);
    expect((await existing(inner, live)).sort()).toEqual([...live].sort());
  });

  test('a run whose budget is already spent still makes progress (one commit), so continuations always end', async () => {
    await expiredAndLive(inner, 30, 0);
    const report = await batchDelete({ store, selector: expiredSelector(T0, 0), batchSize: 10, parallelism: 2, deadline: T0 - 1, clock });
    expect(report).toMatchObject({ deleted: 10, batches: 1, done: false });
  });

  test('a transient failure of a query or a commit is retried with backoff and the run completes', async () => {
    const { expired, live } = await expiredAndLive(inner, 250, 3);
    let finds = 0;
    store.beforeFind = () => {
      if (++finds === 2 || finds === 3) throw new StoreUnavailableError();
    };
    store.beforeDelete = (call) => {
      if (call === 3 || call === 4) throw new StoreUnavailableError();
    };
    const waits: number[] = [];
    const sleep = async (ms: number) => void waits.push(ms);
    const report = await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 20,
      parallelism: 2,
      deadline: T0 + HOUR,
      clock,
      sleep,
    });
    expect(report).toMatchObject({ deleted: 250, done: true });
    // Two retries of the query and two of the commit, each pair waiting longer the second time.
    expect(waits).toHaveLength(4);
    expect(waits.every((ms) => ms >= 250 && ms <= 1000)).toBe(true);
    expect(await existing(inner, expired)).toEqual([]);
    expect((await existing(inner, live)).sort()).toEqual([...live].sort());
  });

  test('a retry is not started past the deadline', async () => {
    await expiredAndLive(inner, 50, 0);
    store.beforeFind = () => {
      clock.advance(2000);
      throw new StoreUnavailableError();
    };
    const waits: number[] = [];
    await expect(
      batchDelete({
        store,
        selector: expiredSelector(T0, 0),
        batchSize: 10,
        parallelism: 2,
        deadline: T0 + 1000,
        clock,
        sleep: async (ms) => void waits.push(ms),
      }),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(waits).toEqual([]);
  });

  test('a commit that keeps failing is tried `retry.attempts` times, then stops the run and is thrown; a re-run deletes exactly what is left', async () => {
    const { expired, live } = await expiredAndLive(inner, 250, 3);
    store.beforeDelete = (call) => {
      if (call >= 3) throw new StoreUnavailableError();
    };
    await expect(
      batchDelete({
        store,
        selector: expiredSelector(T0, 0),
        batchSize: 20,
        parallelism: 2,
        deadline: T0 + HOUR,
        clock,
        retry: { attempts: 3, firstDelayMs: 1 },
      }),
    ).rejects.toBeInstanceOf(StoreUnavailableError);
    // Calls 1 and 2 succeeded; 3 and 4 (the second commit in flight) were each tried three times.
    expect(store.deleteSizes.length).toBeGreaterThanOrEqual(2 + 3);
    expect(store.deleteSizes.length).toBeLessThanOrEqual(2 + 2 * 3);
    const left = await matching(inner, expiredSelector(T0, 0));
    expect(left.length).toBeGreaterThan(0);
    expect(left.length).toBeLessThan(250);

    store.beforeDelete = () => {};
    const rest = await batchDelete({ store, selector: expiredSelector(T0, 0), batchSize: 20, parallelism: 2, deadline: T0 + HOUR, clock });
    expect(rest).toMatchObject({ deleted: left.length, done: true });
    expect(await existing(inner, expired)).toEqual([]);
    expect((await existing(inner, live)).sort()).toEqual([...live].sort());
  });

  test('nothing to delete: done at once, no commit', async () => {
    await expiredAndLive(inner, 0, 3);
    const report = await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 500,
      parallelism: 4,
      deadline: T0 + HOUR,
      clock,
    });
    expect(report).toEqual({ deleted: 0, batches: 0, done: true, elapsedMs: 0 });
    expect(store.deleteSizes).toEqual([]);
  });
});

test('batchDelete refuses a batch size above 500 or a parallelism below 1', async () => {
  const base = { store: new MemorySessionStore(), selector: expiredSelector(T0, 0), deadline: T0, clock: new FakeClock(T0) };
  await expect(batchDelete({ ...base, batchSize: 501, parallelism: 1 })).rejects.toThrow(RangeError);
  await expect(batchDelete({ ...base, batchSize: 0, parallelism: 1 })).rejects.toThrow(RangeError);
  await expect(batchDelete({ ...base, batchSize: 10, parallelism: 0 })).rejects.toThrow(RangeError);
});
