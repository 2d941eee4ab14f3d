import { batchDelete, expiredSelector, killSelector, MAX_BATCH_SIZE } from '../../shared/batchDelete';
import { MemorySessionStore } from '../../shared/memoryStore';
import type { KeyPage, SessionSelector, SessionStore, StorageKey } from '../../shared/store';
import { FakeClock } from '../support/fixtures';
import { existing, keyOf, seed, stored } from '../support/seed';

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
  constructor(readonly inner = new MemorySessionStore()) {}
  get: SessionStore['get'] = (k) => this.inner.get(k);
  update: SessionStore['update'] = (k, d) => this.inner.update(k, d);
  listUserSessions: SessionStore['listUserSessions'] = (u, l, c) => this.inner.listUserSessions(u, l, c);
  async findKeys(selector: SessionSelector, limit: number, cursor?: string): Promise<KeyPage> {
    this.finds.push({ limit, cursor });
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
    const report = await batchDelete({ store, selector: expiredSelector(T0, 0), batchSize: 10, parallelism: 3, deadline: T0 + 3600 * S, clock: new FakeClock(T0) });
    expect(report).toEqual({ deleted: 95, batches: 10, done: true, elapsedMs: 0 });
    expect(store.maxInFlight).toBe(3);
    expect(store.deletes.map((d) => d.length)).toEqual([10, 10, 10, 10, 10, 10, 10, 10, 10, 5]);
    expect(store.finds.map((f) => f.limit)).toEqual([30, 30, 30, 30]);
    expect(store.finds[0]!.cursor).toBeUndefined();
    for (const f of store.finds.slice(1)) expect(f.cursor).toEqual(expect.any(String));
    expect(new Set(store.deletes.flat()).size).toBe(95);
    expect(await existing(store.inner, expired)).toEqual([]);
  });

  test('parallelism 1 runs one commit at a time', async () => {
    const { store } = await withExpired(25);
    await batchDelete({ store, selector: expiredSelector(T0, 0), batchSize: 10, parallelism: 1, deadline: T0 + 3600 * S, clock: new FakeClock(T0) });
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

  test('a failed commit: no commit is started after it, the ones in flight finish, its error is thrown', async () => {
    const { store } = await withExpired(60);
    store.failOnDelete = 2;
    await expect(batchDelete({ store, selector: expiredSelector(T0, 0), batchSize: 10, parallelism: 2, deadline: T0 + 3600 * S, clock: new FakeClock(T0) })).rejects.toThrow('commit 2 failed');
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
    expect(MAX_BATCH_SIZE).toBe(500);
    const store = new GatedStore();
    const run = (batchSize: number, parallelism: number) => batchDelete({ store, selector: expiredSelector(T0, 0), batchSize, parallelism, deadline: T0, clock: new FakeClock(T0) });
    await expect(run(1, 1)).resolves.toMatchObject({ done: true });
    await expect(run(500, 1)).resolves.toMatchObject({ done: true });
    const finds = store.finds.length;
    for (const size of [0, 501, 1.5]) await expect(run(size, 1)).rejects.toThrow(new RangeError('batchSize must be an integer from 1 to 500'));
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
    const report = await batchDelete({ store, selector: expiredSelector(now, 300), batchSize: 10, parallelism: 1, deadline: now + 60 * S, clock: new FakeClock(now) });
    expect(report.deleted).toBe(1);
    expect(await existing(store, [keyOf('long-expired'), keyOf('at-grace'), keyOf('recently-expired'), keyOf('live')])).toEqual([keyOf('at-grace'), keyOf('recently-expired'), keyOf('live')]);
  });

  test('a kill takes the sessions created at or before the issue time, none created after', () => {
    expect(killSelector('u', T0)).toEqual({ kind: 'user', user: 'u', createdAtOrBefore: T0 });
    expect(killSelector(null, T0)).toEqual({ kind: 'user', user: null, createdAtOrBefore: T0 });
  });
});
