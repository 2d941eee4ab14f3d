import type { Clock } from '../core/clock';
import { StoreUnavailableError } from '../core/errors';
import { MAX_COMMIT_MUTATIONS } from '../core/limits';
import type { SessionSelector, SessionStore, StorageKey } from '../store/sessionStore';

export interface BatchProgress {
  /** Sessions deleted so far in this run. */
  deleted: number;
  /** Commits completed so far in this run. */
  batches: number;
  /** Keys in the commit that just completed. */
  batchSize: number;
  elapsedMs: number;
}

export interface BatchDeleteOptions {
  store: SessionStore;
  selector: SessionSelector;
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
}

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
 */
export const ENGINE_RETRY: RetryPolicy = { attempts: 4, firstDelayMs: 500 };

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface BatchDeleteReport {
  deleted: number;
  batches: number;
  /** True when the selector matched nothing more at the end; false when the budget ran out first. */
  done: boolean;
  elapsedMs: number;
}

/**
 * The one batch-deletion engine behind both the kill and the cleanup.
 *
 * Keys-only pages of `batchSize × parallelism` keys are split into commits of `batchSize` keys, at
 * most `parallelism` of them in flight; the next page is queried as soon as the last commit of the
 * current page is under way, so the query round trip overlaps with the commits. At most one page
 * plus the commits in flight are held, so memory is flat whatever the number of matching sessions.
 *
 * Paging: within one run the engine follows the query cursor; it does not re-query from the start
 * after every round. Firestore (also in Datastore mode) keeps index entries of recently deleted
 * entities for a while and a query from the start has to skip over all of them; re-querying would
 * make every round slower than the last, for the cleanup of a large backlog quadratically so.
 * Pages taken by cursor are disjoint, so no key is deleted twice either.
 *
 * Across runs (a continuation after the budget, a Pub/Sub redelivery after a failure) the work is
 * described by the selector alone and restarts from the beginning of the query. Queries are
 * strongly consistent and deleted entities are gone from them, so a re-run finds exactly what is
 * left, whatever a failed or interrupted run managed to delete: the selector is the continuation
 * token and re-running it is idempotent. A cursor is not carried across runs because the keys of a
 * page cut off by the deadline lie before it and would be skipped.
 *
 * The deadline is checked before each query and before each commit is started, never in the middle
 * of a commit: commits in flight are awaited, so a run ends at the deadline plus at most one store
 * call. The first commit of a run is started even when the deadline has already passed, so every
 * run makes progress and a chain of continuations always ends.
 *
 * A query or commit the store reports unavailable (StoreUnavailableError: deadline, overload, lost
 * connection) is retried with backoff (`retry`), but no retry starts past the deadline. One that
 * still fails stops the run: no new work is started, the commits in flight are awaited, and the
 * first error is thrown (for the caller to retry by re-running the selector).
 */
export async function batchDelete(options: BatchDeleteOptions): Promise<BatchDeleteReport> {
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

  const launch = (keys: StorageKey[]) => {
    launched++;
    const commit = withRetry(() => store.deleteMany(keys)).then(
      () => {
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
      const page = await withRetry(() => store.findKeys(selector, batchSize * parallelism, cursor));
      for (let i = 0; i < page.keys.length; i += batchSize) {
        while (inFlight.size >= parallelism && !failure) await Promise.race(inFlight);
        if (failure || outOfTime()) break pages;
        launch(page.keys.slice(i, i + batchSize));
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

/** Sessions expired more than `graceSeconds` before `now`: the grace covers requests still running on them. */
export function expiredSelector(now: number, graceSeconds: number): SessionSelector & { kind: 'expired' } {
  return { kind: 'expired', before: now - graceSeconds * 1000 };
}

/** Sessions of `user` (GUEST_USER for guests, null for everyone) created at or before `issuedAt`. */
export function killSelector(user: string | null, issuedAt: number): SessionSelector & { kind: 'user' } {
  return { kind: 'user', user, createdAtOrBefore: issuedAt };
}
