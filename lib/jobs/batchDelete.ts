import type { Clock } from '../core/clock';
import { StoreUnavailableError } from '../core/errors';
import type { EndReason, EventSink } from '../core/events';
import type { RandomSource } from '../core/ids';
import { MAX_COMMIT_MUTATIONS } from '../core/limits';
import { outboxRecord, removalEvents } from '../core/sessionEvents';
import type { OutboxRecord } from '../core/events';
import type { FindKeysOptions, KeyPage, SessionSelector, StorageKey } from '../store/sessionStore';

/**
 * What the engine needs of a store: a page of keys a selector matches, and a delete commit. Every
 * SessionStore is one for SessionSelector; the viur format's job store (lib/viur/jobStore.ts) is one
 * for its own selectors. The optional arguments serve session events (BatchDeleteOptions.events),
 * which only a SessionStore records.
 */
export interface KeyDeleter<S> {
  /** One page of keys of what the selector matches, in a stable order (with `withUsers`: each key's user too). */
  findKeys(selector: S, limit: number, cursor?: string, options?: FindKeysOptions): Promise<KeyPage>;
  /** Deletes these keys in one commit, with `outbox` stored in the same commit; absent keys are ignored. At most 500 keys. */
  deleteMany(keys: StorageKey[], outbox?: OutboxRecord): Promise<void>;
}

/** Progress of a batchDelete run, reported after every commit (BatchDeleteOptions.onBatch). */
export interface BatchProgress {
  /** Sessions deleted so far in this run. */
  deleted: number;
  /** Commits completed so far in this run. */
  batches: number;
  /** Keys in the commit that just completed. */
  batchSize: number;
  /** Milliseconds since the run started. */
  elapsedMs: number;
}

/** What a batchDelete run deletes, how fast, and until when. */
export interface BatchDeleteOptions<S = SessionSelector> {
  /** The store whose findKeys and deleteMany the run uses. */
  store: KeyDeleter<S>;
  /** Which sessions to delete (expiredSelector, killSelector, or a selector of the store's own). */
  selector: S;
  /** Keys per delete commit, 1..500. */
  batchSize: number;
  /** Delete commits in flight at once, ≥ 1. */
  parallelism: number;
  /** Clock time (ms since the epoch) after which no new work is started. */
  deadline: number;
  clock: Clock;
  /** Called after every completed commit; must not throw. */
  onBatch?: (progress: BatchProgress) => void;
  /** How a query or commit the store reports unavailable is retried; default ENGINE_RETRY. */
  retry?: RetryPolicy;
  /** Waits between retries (tests pass one that does not wait). */
  sleep?: (ms: number) => Promise<void>;
  /** Session events of what is removed (SESSION_EVENTS_TOPIC set); absent: none. */
  events?: BatchEvents;
}

/**
 * Session events of a batch deletion (docs/events.md): the query also reads each session's user,
 * each commit deletes at most 499 sessions and stores their events' outbox record with them, and
 * the record goes to `sink` after the commit.
 */
export interface BatchEvents {
  type: 'ended' | 'expired';
  /** With `ended`: why (the kill job: `kill`). */
  reason?: EndReason;
  random: RandomSource;
  sink: EventSink;
}

/** How often and how patiently the engine retries a query or commit the store reports unavailable. */
export interface RetryPolicy {
  /** Tries of one query or commit in all, ≥ 1. */
  attempts: number;
  /** Wait before the first retry; doubled for each further one, with jitter. */
  firstDelayMs: number;
}

/**
 * Queries and delete commits are idempotent (a re-run query finds what is left; deleting an absent
 * key is a no-op), so a transient failure is retried rather than failing a run of minutes: 4 tries,
 * waiting about 0.5, 1 and 2 s, which rides out a store restart or a brief overload.
 *
 * @example
 * await batchDelete({ ...options, retry: { ...ENGINE_RETRY, attempts: 6 } });
 */
export const ENGINE_RETRY: RetryPolicy = { attempts: 4, firstDelayMs: 500 };

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What a batchDelete run did. */
export interface BatchDeleteReport {
  /** Sessions deleted in this run. */
  deleted: number;
  /** Commits completed in this run. */
  batches: number;
  /** True when the selector matched nothing more at the end; false when the budget ran out first. */
  done: boolean;
  /** Milliseconds the run took. */
  elapsedMs: number;
}

/**
 * The one batch-deletion engine behind both the kill and the cleanup: deletes what `selector`
 * matches in keys-only pages and parallel commits until nothing is left (`done: true`) or the
 * deadline passes. Within a run it follows the query cursor; across runs the selector alone is the
 * continuation token, so re-running it is idempotent. Unavailable stores are retried, then the
 * first error is thrown. Why it pages, stops and retries as it does: docs/design/batch-deletion.md.
 *
 * @example
 * const report = await batchDelete({
 *   store,
 *   selector: killSelector('alice', Date.now()),
 *   batchSize: 500,
 *   parallelism: 4,
 *   deadline: Date.now() + 240_000,
 *   clock: { now: () => Date.now() },
 * });
 * if (!report.done) console.log(`deleted ${report.deleted}, more to do`);
 */
export async function batchDelete<S = SessionSelector>(options: BatchDeleteOptions<S>): Promise<BatchDeleteReport> {
  const { store, selector, clock, deadline, onBatch } = options;
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1 || options.batchSize > MAX_COMMIT_MUTATIONS) {
    throw new RangeError(`batchSize must be an integer from 1 to ${MAX_COMMIT_MUTATIONS}`);
  }
  if (!Number.isInteger(options.parallelism) || options.parallelism < 1) throw new RangeError('parallelism must be a positive integer');
  const { batchSize, parallelism } = options;
  const retry = options.retry ?? ENGINE_RETRY;
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1) throw new RangeError('retry.attempts must be a positive integer');
  const sleep = options.sleep ?? wait;
  const started = clock.now();
  const inFlight = new Set<Promise<void>>();
  let deleted = 0;
  let batches = 0;
  let launched = 0;
  let failure: { error: unknown } | undefined;

  const outOfTime = () => launched > 0 && clock.now() >= deadline;

  const withRetry = async <R>(call: () => Promise<R>): Promise<R> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (!(error instanceof StoreUnavailableError) || attempt >= retry.attempts || failure || clock.now() >= deadline) throw error;
        await sleep(retry.firstDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2));
      }
    }
  };

  const events = options.events;
  const chunkSize = events ? Math.min(batchSize, MAX_COMMIT_MUTATIONS - 1) : batchSize;

  const launch = (keys: StorageKey[], users: string[] | undefined) => {
    launched++;
    // Made once, so that a retried commit stores the same record (the same event ids) again.
    const record =
      events && users
        ? outboxRecord(
            removalEvents(
              keys.map((key, i) => ({ key, user: users[i] ?? null })),
              events.type,
              events.reason,
            ),
            events.random,
            clock.now(),
          )
        : null;
    const commit = withRetry(() => (record ? store.deleteMany(keys, record) : store.deleteMany(keys))).then(
      async () => {
        if (record && events) await events.sink.afterCommit(record);
        deleted += keys.length;
        batches++;
        try {
          onBatch?.({ deleted, batches, batchSize: keys.length, elapsedMs: clock.now() - started });
        } catch {
          // Progress reporting must never turn a successful deletion into a failed run.
        }
      },
      (error: unknown) => {
        failure ??= { error };
      },
    );
    const tracked = commit.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  let exhausted = false;
  let cursor: string | undefined;
  try {
    pages: while (!failure && !outOfTime()) {
      const page = await withRetry(() =>
        events
          ? store.findKeys(selector, chunkSize * parallelism, cursor, { withUsers: true })
          : store.findKeys(selector, batchSize * parallelism, cursor),
      );
      for (let i = 0; i < page.keys.length; i += chunkSize) {
        while (inFlight.size >= parallelism && !failure) await Promise.race(inFlight);
        if (failure || outOfTime()) break pages;
        launch(page.keys.slice(i, i + chunkSize), page.users?.slice(i, i + chunkSize));
      }
      if (page.cursor === undefined) {
        exhausted = true;
        break;
      }
      cursor = page.cursor;
    }
  } catch (error) {
    failure ??= { error };
  }
  await Promise.all(inFlight);
  if (failure) throw failure.error;
  return { deleted, batches, done: exhausted, elapsedMs: clock.now() - started };
}

/**
 * Sessions expired more than `graceSeconds` before `now`: the grace covers requests still running on them.
 *
 * @example
 * expiredSelector(Date.now(), 300); // { kind: 'expired', before: now - 300_000 }
 */
export function expiredSelector(now: number, graceSeconds: number): SessionSelector & { kind: 'expired' } {
  return { kind: 'expired', before: now - graceSeconds * 1000 };
}

/**
 * Sessions of `user` (GUEST_USER for guests, null for everyone) created at or before `issuedAt`
 * (ms since the epoch): a session opened after the kill was issued survives it.
 *
 * @example
 * killSelector('alice', Date.parse('2026-01-01T12:00:00Z')); // { kind: 'user', user: 'alice', createdAtOrBefore: 1767268800000 }
 */
export function killSelector(user: string | null, issuedAt: number): SessionSelector & { kind: 'user' } {
  return { kind: 'user', user, createdAtOrBefore: issuedAt };
}
