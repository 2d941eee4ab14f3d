import type { Clock } from './clock';
import type { SessionSelector, SessionStore, StorageKey } from './store';

/** Datastore's limit on mutations in one commit. */
export const MAX_BATCH_SIZE = 500;

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
}

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
 * A failed query or commit stops the run: no new work is started, the commits in flight are
 * awaited, and the first error is thrown (for the caller to retry by re-running the selector).
 */
export async function batchDelete(options: BatchDeleteOptions): Promise<BatchDeleteReport> {
  const { store, selector, clock, deadline, onBatch } = options;
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1 || options.batchSize > MAX_BATCH_SIZE) {
    throw new RangeError(`batchSize must be an integer from 1 to ${MAX_BATCH_SIZE}`);
  }
  if (!Number.isInteger(options.parallelism) || options.parallelism < 1) throw new RangeError('parallelism must be a positive integer');
  const { batchSize, parallelism } = options;
  const started = clock.now();
  const inFlight = new Set<Promise<void>>();
  let deleted = 0;
  let batches = 0;
  let launched = 0;
  let failure: { error: unknown } | undefined;

  const outOfTime = () => launched > 0 && clock.now() >= deadline;

  const launch = (keys: StorageKey[]) => {
    launched++;
    const commit = store.deleteMany(keys).then(
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
      const page = await store.findKeys(selector, batchSize * parallelism, cursor);
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
