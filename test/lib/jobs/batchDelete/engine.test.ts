import { batchDelete, ENGINE_RETRY, expiredSelector, killSelector, type BatchProgress } from '../../../../lib/jobs/batchDelete';
import { MAX_COMMIT_MUTATIONS } from '../../../../lib/core/limits';
import { StoreUnavailableError } from '../../../../lib/core/errors';
import { MemorySessionStore } from '../../../../lib/store/memoryStore';
import type { KeyPage, SessionSelector, SessionStore, StorageKey } from '../../../../lib/store/sessionStore';
import { FakeClock } from '../../../support/clock';
import { existing, keyOf, seed, stored } from '../../../support/seed';

/*
 * The deletion engine (lib/jobs/batchDelete.ts) on its own, whatever store is behind it: how many
 * commits run at once, deadlines, retries, progress, and what the cleanup and the kill select. It runs
 * on the memory store, without emulators (the mutation suite `core` runs it); stores.test.ts runs the
 * engine on the memory store and on the Datastore emulator.
 */

const T0 = Date.UTC(2026, 0, 1);
const S = 1000;

/**
 * The memory store behind a gate: every delete commit stays in flight until the test's event loop
 * turns, so the number of commits in flight at once is what the engine allows, not what a store
 * that answers synchronously happens to show.
 */
class GatedStore implements SessionStore {
  inFlight = 0;
  maxInFlight = 0;
  readonly finds: Array<{ limit: number; cursor: string | undefined }> = [];
  readonly deletes: StorageKey[][] = [];
  failOnDelete: number | undefined;
  onDelete: () => void = () => {};
  /** Throws this from the n-th query / delete call (1-based) when set. */
  findFailure: (n: number) => unknown = () => undefined;
  deleteFailure: (n: number) => unknown = () => undefined;
  constructor(readonly inner = new MemorySessionStore()) {}
  get: SessionStore['get'] = (k) => this.inner.get(k);
  update: SessionStore['update'] = (k, d) => this.inner.update(k, d);
  listUserSessions: SessionStore['listUserSessions'] = (u, t, l, c) => this.inner.listUserSessions(u, t, l, c);
  findUserSession: SessionStore['findUserSession'] = (u, h, t) => this.inner.findUserSession(u, h, t);
  endSessions: SessionStore['endSessions'] = (k) => this.inner.endSessions(k);
  async findKeys(selector: SessionSelector, limit: number, cursor?: string): Promise<KeyPage> {
    this.finds.push({ limit, cursor });
    const error = this.findFailure(this.finds.length);
    if (error) throw error;
    return this.inner.findKeys(selector, limit, cursor);
  }
  async deleteMany(keys: StorageKey[]): Promise<void> {
    this.deletes.push(keys);
    const n = this.deletes.length;
    this.onDelete();
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((r) => setImmediate(r));
      if (n === this.failOnDelete) throw new Error(`commit ${n} failed`);
      const error = this.deleteFailure(n);
      if (error) throw error;
      await this.inner.deleteMany(keys);
    } finally {
      this.inFlight--;
    }
  }
}

async function withExpired(n: number, live = 0): Promise<{ store: GatedStore; expired: StorageKey[]; live: StorageKey[] }> {
  const store = new GatedStore();
  const rows: Array<[string, ReturnType<typeof stored>]> = [];
  for (let i = 0; i < n; i++) rows.push([`e${i}`, stored({ createdAt: T0 - 7200 * S, expiresAt: T0 - 3600 * S })]);
  for (let i = 0; i < live; i++) rows.push([`l${i}`, stored({ createdAt: T0, expiresAt: T0 + 3600 * S })]);
  const keys = await seed(store.inner, rows);
  return { store, expired: keys.slice(0, n), live: keys.slice(n) };
}

describe('batch deletion engine', () => {
  test('runs exactly `parallelism` commits at once, never more, and follows the query cursor page by page', async () => {
    const { store, expired } = await withExpired(95);
    const report = await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 10,
      parallelism: 3,
      deadline: T0 + 3600 * S,
      clock: new FakeClock(T0),
    });
    expect(report).toEqual({ deleted: 95, batches: 10, done: true, elapsedMs: 0 });
    expect(store.maxInFlight).toBe(3);
    expect(store.deletes.map((d) => d.length)).toEqual([10, 10, 10, 10, 10, 10, 10, 10, 10, 5]);
    expect(store.finds.map((f) => f.limit)).toEqual([30, 30, 30, 30]);
    expect(store.finds[0].cursor).toBeUndefined();
    for (const f of store.finds.slice(1)) expect(f.cursor).toEqual(expect.any(String));
    expect(new Set(store.deletes.flat()).size).toBe(95);
    expect(await existing(store.inner, expired)).toEqual([]);
  });

  test('parallelism 1 runs one commit at a time', async () => {
    const { store } = await withExpired(25);
    await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 10,
      parallelism: 1,
      deadline: T0 + 3600 * S,
      clock: new FakeClock(T0),
    });
    expect(store.maxInFlight).toBe(1);
    expect(store.deletes).toHaveLength(3);
  });

  test('a deadline reached exactly stops new work; the first commit of a run is still made', async () => {
    const { store } = await withExpired(50);
    const clock = new FakeClock(T0);
    const report = await batchDelete({ store, selector: expiredSelector(T0, 0), batchSize: 10, parallelism: 2, deadline: T0, clock });
    expect(report).toMatchObject({ deleted: 10, batches: 1, done: false });
    // One step before the deadline the run goes on until the clock reaches it.
    const { store: s2 } = await withExpired(50);
    const c2 = new FakeClock(T0 - 1);
    s2.onDelete = () => {
      if (s2.deletes.length === 2) c2.advance(1);
    };
    const r2 = await batchDelete({ store: s2, selector: expiredSelector(T0, 0), batchSize: 10, parallelism: 1, deadline: T0, clock: c2 });
    expect(r2).toMatchObject({ deleted: 20, batches: 2, done: false, elapsedMs: 1 });
  });

  test('a deadline reached at the end of a page queries no further page', async () => {
    const { store } = await withExpired(30);
    const report = await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 10,
      parallelism: 1,
      deadline: T0,
      clock: new FakeClock(T0),
    });
    expect(report).toMatchObject({ deleted: 10, batches: 1, done: false });
    expect(store.finds).toHaveLength(1);
  });

  test('a failed commit: no commit is started after it, the ones in flight finish, its error is thrown', async () => {
    const { store } = await withExpired(60);
    store.failOnDelete = 2;
    await expect(
      batchDelete({
        store,
        selector: expiredSelector(T0, 0),
        batchSize: 10,
        parallelism: 2,
        deadline: T0 + 3600 * S,
        clock: new FakeClock(T0),
      }),
    ).rejects.toThrow('commit 2 failed');
    expect(store.deletes.length).toBeLessThanOrEqual(3);
    expect(store.inFlight).toBe(0);
  });

  test('a throwing progress callback does not fail the run; progress counts every commit', async () => {
    const { store } = await withExpired(30);
    const seen: number[] = [];
    const report = await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 10,
      parallelism: 2,
      deadline: T0 + 3600 * S,
      clock: new FakeClock(T0),
      onBatch: (p) => {
        seen.push(p.deleted);
        throw new Error('logger down');
      },
    });
    expect(report.deleted).toBe(30);
    expect(seen.sort((a, b) => a - b)).toEqual([10, 20, 30]);
  });

  test('batch size 1 to 500 and parallelism from 1; anything else is refused before any store call', async () => {
    expect(MAX_COMMIT_MUTATIONS).toBe(500);
    const store = new GatedStore();
    const run = (batchSize: number, parallelism: number) =>
      batchDelete({ store, selector: expiredSelector(T0, 0), batchSize, parallelism, deadline: T0, clock: new FakeClock(T0) });
    await expect(run(1, 1)).resolves.toMatchObject({ done: true });
    await expect(run(500, 1)).resolves.toMatchObject({ done: true });
    const finds = store.finds.length;
    for (const size of [0, 501, 1.5])
      await expect(run(size, 1)).rejects.toThrow(new RangeError('batchSize must be an integer from 1 to 500'));
    for (const p of [0, 1.5]) await expect(run(10, p)).rejects.toThrow(new RangeError('parallelism must be a positive integer'));
    expect(store.finds.length).toBe(finds);
  });
});

describe('what the cleanup and the kill select', () => {
  test('the cleanup keeps sessions expired less than the grace ago, and every live one', async () => {
    const store = new MemorySessionStore();
    const now = T0;
    await seed(store, [
      ['long-expired', stored({ createdAt: now - 7200 * S, expiresAt: now - 301 * S })],
      ['at-grace', stored({ createdAt: now - 7200 * S, expiresAt: now - 300 * S })],
      ['recently-expired', stored({ createdAt: now - 7200 * S, expiresAt: now - 100 * S })],
      ['live', stored({ createdAt: now, expiresAt: now + 3600 * S })],
    ]);
    expect(expiredSelector(now, 300)).toEqual({ kind: 'expired', before: now - 300 * S });
    const report = await batchDelete({
      store,
      selector: expiredSelector(now, 300),
      batchSize: 10,
      parallelism: 1,
      deadline: now + 60 * S,
      clock: new FakeClock(now),
    });
    expect(report.deleted).toBe(1);
    expect(await existing(store, [keyOf('long-expired'), keyOf('at-grace'), keyOf('recently-expired'), keyOf('live')])).toEqual([
      keyOf('at-grace'),
      keyOf('recently-expired'),
      keyOf('live'),
    ]);
  });

  test('a kill takes the sessions created at or before the issue time, none created after', () => {
    expect(killSelector('u', T0)).toEqual({ kind: 'user', user: 'u', createdAtOrBefore: T0 });
    expect(killSelector(null, T0)).toEqual({ kind: 'user', user: null, createdAtOrBefore: T0 });
  });
});

describe('retries of a store that is briefly unavailable', () => {
  const run = (store: GatedStore, extra: Partial<Parameters<typeof batchDelete>[0]> = {}) =>
    batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 10,
      parallelism: 1,
      deadline: T0 + 3600 * S,
      clock: new FakeClock(T0),
      ...extra,
    });

  test('by default a call is tried 4 times, waiting about 0.5, 1 and 2 s (jittered down to half), then its error is thrown', async () => {
    expect(ENGINE_RETRY).toEqual({ attempts: 4, firstDelayMs: 500 });
    const { store } = await withExpired(5);
    const unavailable = new StoreUnavailableError();
    store.deleteFailure = () => unavailable;
    const waits: number[] = [];
    await expect(run(store, { sleep: async (ms) => void waits.push(ms) })).rejects.toBe(unavailable);
    expect(store.deletes).toHaveLength(4);
    expect(waits).toHaveLength(3);
    const bounds = [500, 1000, 2000];
    waits.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual(bounds[i] / 2);
      expect(ms).toBeLessThanOrEqual(bounds[i]);
    });
  });

  test('a query or commit that recovers within the attempts completes the run; nothing is lost or deleted twice', async () => {
    const { store, expired } = await withExpired(25);
    store.findFailure = (n) => (n === 1 || n === 2 ? new StoreUnavailableError() : undefined);
    store.deleteFailure = (n) => (n === 2 ? new StoreUnavailableError() : undefined);
    const waits: number[] = [];
    const report = await run(store, { retry: { attempts: 3, firstDelayMs: 100 }, sleep: async (ms) => void waits.push(ms) });
    expect(report).toEqual({ deleted: 25, batches: 3, done: true, elapsedMs: 0 });
    expect(waits).toHaveLength(3);
    expect(waits[0]).toBeGreaterThanOrEqual(50);
    expect(waits[0]).toBeLessThanOrEqual(100);
    expect(waits[1]).toBeGreaterThanOrEqual(100);
    expect(waits[1]).toBeLessThanOrEqual(200);
    expect(await existing(store.inner, expired)).toEqual([]);
  });

  test('attempts: 1 means no retry; other errors than an unavailable store are never retried', async () => {
    const { store } = await withExpired(5);
    store.deleteFailure = () => new StoreUnavailableError();
    await expect(run(store, { retry: { attempts: 1, firstDelayMs: 1 }, sleep: async () => {} })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
    expect(store.deletes).toHaveLength(1);
    const { store: s2 } = await withExpired(5);
    const bug = new TypeError('not transient');
    s2.findFailure = () => bug;
    await expect(run(s2, { sleep: async () => {} })).rejects.toBe(bug);
    expect(s2.finds).toHaveLength(1);
  });

  test('no retry starts at or past the deadline', async () => {
    const { store } = await withExpired(5);
    const clock = new FakeClock(T0);
    store.findFailure = () => {
      clock.t = T0 + 1000;
      return new StoreUnavailableError();
    };
    const waits: number[] = [];
    await expect(run(store, { clock, deadline: T0 + 1000, sleep: async (ms) => void waits.push(ms) })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
    expect(waits).toEqual([]);
    expect(store.finds).toHaveLength(1);
  });

  test('once a commit failed for good, the others stop retrying and the first error is thrown', async () => {
    const { store } = await withExpired(40);
    const first = new Error('commit 1 failed for good');
    store.deleteFailure = (n) => (n === 1 ? first : new StoreUnavailableError());
    const waits: number[] = [];
    await expect(run(store, { parallelism: 2, sleep: async (ms) => void waits.push(ms) })).rejects.toBe(first);
    // Commit 2 was in flight when commit 1 failed: it is not retried afterwards.
    expect(store.deletes).toHaveLength(2);
    expect(waits).toEqual([]);
  });

  test('retry.attempts must be a positive integer, checked before any store call', async () => {
    const { store } = await withExpired(5);
    for (const attempts of [0, 1.5]) {
      await expect(run(store, { retry: { attempts, firstDelayMs: 1 } })).rejects.toThrow(
        new RangeError('retry.attempts must be a positive integer'),
      );
    }
    expect(store.finds).toHaveLength(0);
  });
});

describe('progress and the report', () => {
  test('each commit reports the running totals, its own size and the elapsed time', async () => {
    const { store } = await withExpired(25);
    const clock = new FakeClock(T0);
    const seen: BatchProgress[] = [];
    store.onDelete = () => clock.advance(10);
    const report = await batchDelete({
      store,
      selector: expiredSelector(T0, 0),
      batchSize: 10,
      parallelism: 1,
      deadline: T0 + 3600 * S,
      clock,
      onBatch: (p) => seen.push(p),
    });
    expect(seen).toEqual([
      { deleted: 10, batches: 1, batchSize: 10, elapsedMs: 10 },
      { deleted: 20, batches: 2, batchSize: 10, elapsedMs: 20 },
      { deleted: 25, batches: 3, batchSize: 5, elapsedMs: 30 },
    ]);
    expect(report).toEqual({ deleted: 25, batches: 3, done: true, elapsedMs: 30 });
  });

  test('a query that fails for good stops the run after the commits in flight finished; their deletions count', async () => {
    const { store } = await withExpired(30);
    const down = new Error('query failed');
    store.findFailure = (n) => (n === 2 ? down : undefined);
    await expect(
      batchDelete({
        store,
        selector: expiredSelector(T0, 0),
        batchSize: 10,
        parallelism: 2,
        deadline: T0 + 3600 * S,
        clock: new FakeClock(T0),
      }),
    ).rejects.toBe(down);
    expect(store.inFlight).toBe(0);
    expect(store.deletes).toHaveLength(2);
  });

  test('the cleanup grace is subtracted: a larger grace keeps more, never deletes live sessions', () => {
    expect(expiredSelector(T0, 0)).toEqual({ kind: 'expired', before: T0 });
    expect(expiredSelector(T0, 60)).toEqual({ kind: 'expired', before: T0 - 60 * S });
  });
});
