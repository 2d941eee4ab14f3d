import type { Request, Response } from '@google-cloud/functions-framework';
import { type CleanupReport, runCleanup } from '../lib/jobs/cleanup';
import { publisherFor } from '../lib/jobs/killPublisher';
import { errorName, log } from '../lib/setup/log';
import { runtime } from '../lib/setup/runtime';
import { HttpError, respondWithError, sendJson } from './http/errors';

/**
 * Cloud Scheduler's nightly `POST /` (body optional and ignored). Answers 200 with the report. A
 * backlog larger than one run's budget continues at once, not next night: the run publishes a
 * `{"cleanup": {…}}` message to the kill topic, and the kill function, which already knows how to
 * continue work in follow-up messages within its own budget, carries on until nothing is left.
 * Other methods get 405; a failed store or publish answers 503 (a retry continues, nothing is lost).
 *
 * @example
 * import * as functions from '@google-cloud/functions-framework';
 * functions.http('startClearSessions', startClearSessions);
 * // POST / → 200 {"deleted":1520,"batches":4,"done":true,"elapsedMs":3100,"expiredBefore":"…","continued":false}
 */
export async function startClearSessions(req: Request, res: Response): Promise<void> {
  try {
    if (req.method !== 'POST') throw new HttpError(405, 'method_not_allowed', 'use POST', { Allow: 'POST' });
    sendJson(res, 200, await cleanupAndContinue());
  } catch (err) {
    respondWithError(res, err, 'startClearSessions');
  }
}

async function cleanupAndContinue(): Promise<CleanupReport & { continued: boolean }> {
  const rt = runtime();
  let report: CleanupReport;
  try {
    report = await runCleanup(rt, rt.config.deletion.cleanupBudgetSeconds);
  } catch (err) {
    log('ERROR', 'cleanup failed; the next run (or a retry) continues where it stopped', { error: errorName(err) });
    throw new HttpError(503, 'store_unavailable', 'the session store failed during cleanup; nothing is lost, a retry continues');
  }
  if (report.done) return { ...report, continued: false };
  try {
    const messageId = await publisherFor(rt.config).publish({ cleanup: { continuation: 1 } });
    log('INFO', 'cleanup continues in a follow-up message', { continuationMessageId: messageId, topic: rt.config.killTopic });
  } catch (err) {
    log('ERROR', 'could not publish the cleanup continuation', {
      error: errorName(err),
      topic: rt.config.killTopic,
      deleted: report.deleted,
    });
    throw new HttpError(
      503,
      'continuation_unavailable',
      `deleted ${report.deleted} sessions but could not schedule the rest; a retry continues`,
    );
  }
  return { ...report, continued: true };
}
