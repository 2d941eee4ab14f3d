import type { CloudEvent } from '@google-cloud/functions-framework';
import { processKillMessage } from '../lib/jobs/kill';
import { type KillMessage, MalformedKillMessageError, parseKillMessageData } from '../lib/jobs/killMessage';
import { errorName, log } from '../lib/setup/log';
import { runtime } from '../lib/setup/runtime';

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

/**
 * Pub/Sub handler of the kill topic (docs/kill-messages.md#delivery-and-redelivery).
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

