import type { CloudEvent } from '@google-cloud/functions-framework';
import { batchDelete, killSelector } from '../lib/jobs/batchDelete';
import { type KillMessage, type KillMessageData, MalformedKillMessageError, MAX_CONTINUATIONS, isoTime, parseKillMessageData } from '../lib/jobs/killMessage';
import { publisherFor } from '../lib/jobs/killPublisher';
import { log } from '../lib/setup/log';
import { type Runtime, runtime } from '../lib/setup/runtime';
import { GUEST_USER } from '../lib/core/session';
import { errorName, runCleanup } from './startClearSessions';

/** The Pub/Sub message inside the event, in the two shapes that reach this function. */
export interface ReceivedMessage {
  messageId: string;
  /** ms since the epoch; undefined when the event carries none. */
  publishTime: number | undefined;
  data: Buffer | undefined;
}

function field(obj: Record<string, unknown>, ...names: string[]): unknown {
  for (const n of names) if (obj[n] !== undefined) return obj[n];
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Eventarc delivers `{message: {data, messageId, publishTime, attributes}, subscription}` as the
 * event data; a raw push request (the emulator's push subscription) is converted by
 * functions-framework into `{message: {data, messageId, publishTime, attributes}}`. Some producers
 * spell the fields in snake case; the CloudEvent's own id and time are the fallbacks.
 */
export function receivedMessage(event: CloudEvent<unknown>): ReceivedMessage {
  const envelope = isRecord(event.data) ? event.data : {};
  const message = isRecord(envelope.message) ? envelope.message : {};
  const id = field(message, 'messageId', 'message_id') ?? event.id;
  const time = field(message, 'publishTime', 'publish_time') ?? event.time;
  const parsedTime = typeof time === 'string' ? Date.parse(time) : NaN;
  const raw = message.data;
  return {
    messageId: typeof id === 'string' && id.length > 0 ? id.slice(0, 128) : 'unknown',
    publishTime: Number.isNaN(parsedTime) ? undefined : parsedTime,
    data: typeof raw === 'string' && BASE64.test(raw) ? Buffer.from(raw, 'base64') : undefined,
  };
}

function scope(user: string | null): 'everyone' | 'guests' | 'user' {
  return user === null ? 'everyone' : user === GUEST_USER ? 'guests' : 'user';
}

/**
 * Pub/Sub handler of the kill topic (SPEC §2.2).
 *
 * - A malformed message is logged (message id and reason, never the data) and acknowledged:
 *   redelivering it cannot fix it.
 * - A store or publish failure is thrown, so Pub/Sub redelivers the message; every unit of work
 *   is idempotent (it re-runs its selector from the start), so redelivery is harmless.
 * - `{"users": [...]}` is fanned out by publishing one `{"user", "issuedAt"}` message per user, all
 *   with the same cut-off, instead of working through the list here: each user becomes a unit of
 *   work with its own budget, retries and dead-lettering, and one user with a million sessions does
 *   not hold up (or, on failure, repeat) the others.
 * - A kill that does not finish within SESSION_KILL_BUDGET_SECONDS publishes a continuation with
 *   the same cut-off to the same topic and returns.
 * - `{"cleanup": {…}}` runs a cleanup pass (the continuation of startClearSessions).
 */
export async function killSessionByUser(event: CloudEvent<unknown>): Promise<void> {
  const rt = runtime();
  const received = receivedMessage(event);
  let message: KillMessage;
  try {
    message = parseKillMessageData(received.data);
  } catch (err) {
    if (!(err instanceof MalformedKillMessageError)) throw err;
    log('ERROR', 'malformed kill message acknowledged without action', { messageId: received.messageId, code: err.code, reason: err.message });
    return;
  }
  try {
    await processKillMessage(rt, message, received);
  } catch (err) {
    log('WARNING', 'kill message failed; Pub/Sub will redeliver it', { messageId: received.messageId, kind: message.kind, error: errorName(err) });
    throw err;
  }
}

/** Runs one validated message; separate from the CloudEvent unwrapping so it can be driven without Pub/Sub. */
export async function processKillMessage(rt: Runtime, message: KillMessage, received: Pick<ReceivedMessage, 'messageId' | 'publishTime'>): Promise<void> {
  const { config, clock } = rt;
  const { messageId } = received;
  const publishTime = received.publishTime ?? clock.now();

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

  const fields = { messageId, scope: scope(message.user), user: message.user, issuedAt: isoTime(new Date(issuedAt)), continuation: message.continuation };
  log('INFO', 'kill started', fields);
  const report = await batchDelete({
    store: rt.store,
    selector: killSelector(message.user, issuedAt),
    batchSize: config.deletion.batchSize,
    parallelism: config.deletion.parallelism,
    deadline: clock.now() + config.deletion.killBudgetSeconds * 1000,
    clock,
    onBatch: (p) => log('INFO', 'kill progress', { messageId, deleted: p.deleted, batches: p.batches, elapsedMs: p.elapsedMs }),
  });
  log('INFO', report.done ? 'kill finished' : 'kill budget spent', { ...fields, ...report });
  if (!report.done) {
    await continueWith(rt, messageId, message.continuation, (n) => ({ user: message.user, issuedAt: fields.issuedAt, continuation: n }));
  }
}

async function continueWith(
  rt: Runtime,
  messageId: string,
  current: number,
  make: (next: number) => KillMessageData,
): Promise<void> {
  const next = current + 1;
  if (next > MAX_CONTINUATIONS) {
    log('ERROR', 'continuation limit reached; the rest is left to the next run', { messageId, continuations: current });
    return;
  }
  const continuationMessageId = await publisherFor(rt.config).publish(make(next));
  log('INFO', 'work continues in a follow-up message', { messageId, continuationMessageId, continuation: next, topic: rt.config.killTopic });
}
