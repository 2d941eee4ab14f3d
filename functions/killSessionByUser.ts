import type { CloudEvent } from '@google-cloud/functions-framework';
import { processKillMessage } from '../lib/jobs/kill';
import { type KillMessage, MalformedKillMessageError, parseKillMessageData } from '../lib/jobs/killMessage';
import { errorName, log } from '../lib/setup/log';
import { runtime } from '../lib/setup/runtime';

/** The Pub/Sub message inside the event, in the two shapes that reach this function, with its data decoded. */
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
 * spell the fields in snake case; the CloudEvent's own id and time are the fallbacks. Data that is
 * not base64 comes out as undefined (then the message is malformed).
 *
 * @example
 * const { messageId, publishTime, data } = receivedMessage(event); // data: the decoded message bytes
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
 * Pub/Sub handler of the kill topic (docs/kill-messages.md#delivery-and-redelivery). A malformed message is
 * logged and acknowledged; a failure is thrown for Pub/Sub to redeliver (every unit of work is
 * idempotent); a list of users is fanned out, an unfinished kill or cleanup continues in a follow-up
 * message. Why it works this way: docs/design/kill-processing.md.
 *
 * @example
 * import * as functions from '@google-cloud/functions-framework';
 * functions.cloudEvent('killSessionByUser', killSessionByUser);
 */
export async function killSessionByUser(event: CloudEvent<unknown>): Promise<void> {
  const rt = runtime();
  const received = receivedMessage(event);
  let message: KillMessage;
  try {
    message = parseKillMessageData(received.data);
  } catch (err) {
    if (!(err instanceof MalformedKillMessageError)) throw err;
    log('ERROR', 'malformed kill message acknowledged without action', {
      messageId: received.messageId,
      code: err.code,
      reason: err.message,
    });
    return;
  }
  try {
    await processKillMessage(rt, message, received);
  } catch (err) {
    log('WARNING', 'kill message failed; Pub/Sub will redeliver it', {
      messageId: received.messageId,
      kind: message.kind,
      error: errorName(err),
    });
    throw err;
  }
}
