import { type BatchDeleteReport, batchDelete, expiredSelector } from './batchDelete';
import { log, type LogFields } from '../setup/log';
import type { Runtime } from '../setup/runtime';
import { runViurCleanup } from './viurJobs';

/** What one cleanup pass did: the engine's report and its cut-off. */
export interface CleanupReport extends BatchDeleteReport {
  /** Sessions that expired before this time were deleted (now − grace when the run started). */
  expiredBefore: string;
}

/**
 * One cleanup pass within `budgetSeconds`: deletes sessions whose expiresAt lies more than the grace
 * period in the past (in `viur` format: runViurCleanup, ViUR's own criteria). Shared by this function and by the kill function, which processes the cleanup
 * continuation messages; the cut-off is always computed here, at processing time, never taken from
 * a message, so nothing can make the cleanup delete a live session. `context` is added to every
 * log line (the message id of a continuation). When `done` is false the caller continues the work.
 *
 * @example
 * const report = await runCleanup(runtime(), 1200);
 * // { deleted: 1520, batches: 4, done: true, elapsedMs: 3100, expiredBefore: '2026-01-01T11:55:00.000Z' }
 */
export async function runCleanup(rt: Runtime, budgetSeconds: number, context: LogFields = {}): Promise<CleanupReport> {
  const { config, store, clock } = rt;
  // viur format: ViUR's own criteria on ViUR's entities (docs/viur-kill-cleanup.md#cleanup).
  if (config.format === 'viur') return runViurCleanup(rt, budgetSeconds, context);
  const now = clock.now();
  const selector = expiredSelector(now, config.deletion.cleanupGraceSeconds);
  const expiredBefore = new Date(selector.before).toISOString();
  log('INFO', 'cleanup started', { ...context, expiredBefore, budgetSeconds });
  const report = await batchDelete({
    store,
    selector,
    batchSize: config.deletion.batchSize,
    parallelism: config.deletion.parallelism,
    deadline: now + budgetSeconds * 1000,
    clock,
    onBatch: (p) => log('INFO', 'cleanup progress', { ...context, deleted: p.deleted, batches: p.batches, elapsedMs: p.elapsedMs }),
    ...(rt.events ? { events: { type: 'expired' as const, random: rt.random, sink: rt.events } } : {}),
  });
  // Session events that requests committed but did not publish (a crash, a failed publish).
  if (rt.events) await rt.events.relay();
  log('INFO', report.done ? 'cleanup finished' : 'cleanup budget spent', { ...context, ...report, expiredBefore });
  return { ...report, expiredBefore };
}
