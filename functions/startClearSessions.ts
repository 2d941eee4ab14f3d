import type { Request, Response } from '@google-cloud/functions-framework';
import { type BatchDeleteReport, batchDelete, expiredSelector } from '../lib/jobs/batchDelete';
import { StoreUnavailableError } from '../lib/core/errors';
import { publisherFor } from '../lib/jobs/killPublisher';
import { log, type LogFields } from '../lib/setup/log';
import { type Runtime, runtime } from '../lib/setup/runtime';

export interface CleanupReport extends BatchDeleteReport {
  /** Sessions that expired before this time were deleted (now − grace when the run started). */
  expiredBefore: string;
}

/**
 * One cleanup pass within `budgetSeconds`: deletes sessions whose expiresAt lies more than the grace
 * period in the past. Shared by this function and by the kill function, which processes the cleanup
 * continuation messages; the cut-off is always computed here, at processing time, never taken from
 * a message, so nothing can make the cleanup delete a live session.
 */
export async function runCleanup(rt: Runtime, budgetSeconds: number, context: LogFields = {}): Promise<CleanupReport> {
  const { config, store, clock } = rt;
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
  });
  log('INFO', report.done ? 'cleanup finished' : 'cleanup budget spent', { ...context, ...report, expiredBefore });
  return { ...report, expiredBefore };
}

function error(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
}

/**
 * Cloud Scheduler's nightly `POST /` (body optional and ignored). Answers 200 with the report. A
 * backlog larger than one run's budget continues at once, not next night: the run publishes a
 * `{"cleanup": {…}}` message to the kill topic, and the kill function, which already knows how to
 * continue work in follow-up messages within its own budget, carries on until nothing is left.
 */
export async function startClearSessions(req: Request, res: Response): Promise<void> {
  if (req.method !== 'POST') {
    res.set('Allow', 'POST');
    error(res, 405, 'method_not_allowed', 'use POST');
    return;
  }
  const rt = runtime();
  let report: CleanupReport;
  try {
    report = await runCleanup(rt, rt.config.deletion.cleanupBudgetSeconds);
  } catch (err) {
    const unavailable = err instanceof StoreUnavailableError;
    log('ERROR', 'cleanup failed; the next run (or a retry) continues where it stopped', { error: unavailable ? err.code : errorName(err) });
    error(res, 503, 'store_unavailable', 'the session store failed during cleanup; nothing is lost, a retry continues');
    return;
  }
  let continued = false;
  if (!report.done) {
    try {
      const messageId = await publisherFor(rt.config).publish({ cleanup: { continuation: 1 } });
      log('INFO', 'cleanup continues in a follow-up message', { continuationMessageId: messageId, topic: rt.config.killTopic });
      continued = true;
    } catch (err) {
      log('ERROR', 'could not publish the cleanup continuation', { error: errorName(err), topic: rt.config.killTopic, deleted: report.deleted });
      error(res, 503, 'continuation_unavailable', `deleted ${report.deleted} sessions but could not schedule the rest; a retry continues`);
      return;
    }
  }
  res.status(200).json({ ...report, continued });
}

/** The class or code of an error only: messages of client errors may quote request details. */
export function errorName(err: unknown): string {
  if (err instanceof StoreUnavailableError) return err.code;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return code === undefined ? err.name : `${err.name}:${String(code)}`;
  }
  return typeof err;
}
