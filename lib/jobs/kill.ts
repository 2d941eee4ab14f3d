import { batchDelete, killSelector } from './batchDelete';
import { runCleanup } from './cleanup';
import { type KillMessage, type KillMessageData, isoTime } from './killMessage';
import { publisherFor } from './killPublisher';
import { processResweep, runViurKill } from './viurJobs';
import { KeyPathError } from '../viur/userKey';
import { GUEST_USER, MAX_CONTINUATIONS } from '../core/limits';
import { log, userLogFields } from '../setup/log';
import type { Runtime } from '../setup/runtime';

/** Where a message came from, as the kill function received it. */
export interface MessageOrigin {
  messageId: string;
  /** ms since the epoch; undefined when the event carries none (then: now). */
  publishTime: number | undefined;
}

function scope(user: string | null): 'everyone' | 'guests' | 'user' {
  return user === null ? 'everyone' : user === GUEST_USER ? 'guests' : 'user';
}

/**
 * Runs one validated message; separate from the CloudEvent unwrapping so it can be driven without Pub/Sub.
 * A kill deletes with killSelector (cut-off: issuedAt, at most the publish time), a fan-out
 * publishes one kill per user, a cleanup runs runCleanup; unfinished work continues in a follow-up
 * message (docs/kill-messages.md). Store and publish failures are thrown, for Pub/Sub to redeliver.
 *
 * @example
 * await processKillMessage(rt, parseKillMessageData('{"user":"alice"}'), { messageId: 'm-1', publishTime: Date.now() });
 */
export async function processKillMessage(rt: Runtime, message: KillMessage, received: MessageOrigin): Promise<void> {
  const { config, clock } = rt;
  const { messageId } = received;
  const publishTime = received.publishTime ?? clock.now();

  if (message.kind === 'resweep') {
    if (config.format !== 'viur') {
      log('WARNING', 'resweep message ignored: it belongs to SESSION_FORMAT=viur', { messageId });
      return;
    }
    await processResweep(rt, message, { messageId, continuation: message.continuation });
    return;
  }

  if (message.kind === 'cleanup') {
    const report = await runCleanup(rt, config.deletion.killBudgetSeconds, { messageId, continuation: message.continuation });
    if (!report.done) await continueWith(rt, messageId, message.continuation, (n) => ({ cleanup: { continuation: n } }));
    return;
  }

  // An issuedAt later than the publish time (a skewed clock, a typo) is capped at it: sessions
  // opened after the kill was published are never the kill's target.
  const issuedAt = Math.min(message.issuedAt?.getTime() ?? publishTime, publishTime);

  if (message.kind === 'fanOut') {
    const publisher = publisherFor(config);
    const at = isoTime(new Date(issuedAt));
    const ids = await Promise.all(message.users.map((user) => publisher.publish({ user, issuedAt: at })));
    log('INFO', 'kill fanned out', { messageId, users: message.users.length, issuedAt: at, followUps: ids.length });
    return;
  }

  const fields = {
    messageId,
    scope: scope(message.user),
    // A keyed digest unless the operator opted in to raw ids (docs/operations.md).
    ...userLogFields(message.user, config),
    issuedAt: isoTime(new Date(issuedAt)),
    continuation: message.continuation,
  };
  log('INFO', 'kill started', fields);
  if (config.format === 'viur') {
    let viurReport;
    try {
      viurReport = await runViurKill(rt, message.user, { messageId });
    } catch (err) {
      if (!(err instanceof KeyPathError)) throw err;
      // As a malformed message: retrying cannot fix it.
      log('ERROR', 'malformed kill message acknowledged without action', { messageId, code: err.code, reason: err.message });
      return;
    }
    log('INFO', viurReport.done ? 'kill finished' : 'kill budget spent', { ...fields, ...viurReport });
    if (!viurReport.done) {
      await continueWith(rt, messageId, message.continuation, (n) => ({ user: message.user, issuedAt: fields.issuedAt, continuation: n }));
    }
    return;
  }
  const report = await batchDelete({
    store: rt.store,
    selector: killSelector(message.user, issuedAt),
    batchSize: config.deletion.batchSize,
    parallelism: config.deletion.parallelism,
    deadline: clock.now() + config.deletion.killBudgetSeconds * 1000,
    clock,
    onBatch: (p) => log('INFO', 'kill progress', { messageId, deleted: p.deleted, batches: p.batches, elapsedMs: p.elapsedMs }),
    ...(rt.events ? { events: { type: 'ended' as const, reason: 'kill' as const, random: rt.random, sink: rt.events } } : {}),
  });
  // The revocation latency (docs/guarantees.md): from the kill's publication to its last delete. A
  // follow-up measures from issuedAt, which it carries from the first message and which is at most
  // that message's publish time, so the figure can only err on the long side.
  const latencyMs = clock.now() - (message.continuation > 0 ? issuedAt : publishTime);
  log('INFO', report.done ? 'kill finished' : 'kill budget spent', { ...fields, ...report, ...(report.done ? { latencyMs } : {}) });
  if (!report.done) {
    await continueWith(rt, messageId, message.continuation, (n) => ({ user: message.user, issuedAt: fields.issuedAt, continuation: n }));
  }
}

async function continueWith(rt: Runtime, messageId: string, current: number, make: (next: number) => KillMessageData): Promise<void> {
  const next = current + 1;
  if (next > MAX_CONTINUATIONS) {
    log('ERROR', 'continuation limit reached; the rest is left to the next run', { messageId, continuations: current });
    return;
  }
  const continuationMessageId = await publisherFor(rt.config).publish(make(next));
  log('INFO', 'work continues in a follow-up message', {
    messageId,
    continuationMessageId,
    continuation: next,
    topic: rt.config.killTopic,
  });
}
