import type { z as Zod } from 'zod';
import { MAX_CONTINUATIONS, MAX_MESSAGE_BYTES, MAX_USER_BYTES, MAX_USERS_PER_MESSAGE } from '../core/limits';
import { VIUR_ID_PATTERN } from '../viur/constants';
import { MAX_RESWEEP_KEYS } from '../viur/jobLimits';

/**
 * The data of a message on the kill topic (docs/kill-messages.md#message-format), as JSON:
 *
 * - `{"user": "<id>"}`, `{"user": "__guest__"}` (sessions without a user), `{"user": null}` (every session);
 * - `{"users": ["a", "b"]}`: fanned out into one `{"user": …}` message per user;
 * - optional `"issuedAt"` (ISO 8601 with `Z` or an offset) on all of the above; default: the publish time.
 *
 * Internal forms, published by the service itself:
 * - `{"user": X, "issuedAt": T, "continuation": n}`: the n-th follow-up of a kill that did not fit one
 *   invocation. `issuedAt` is required so that a follow-up never moves the cut-off to its own, later,
 *   publish time (which would kill sessions the user opened after the kill was issued).
 * - `{"cleanup": {}}` / `{"cleanup": {"continuation": n}}`: continue the expired-session cleanup. It
 *   carries no time on purpose: the cut-off is computed when it is processed (now − grace), so no
 *   message, forged or stale, can make the cleanup delete a live session.
 * - `{"resweep": {"keys": [...], "at": T, "continuation"?: n}}` (`viur` format only): at time T,
 *   delete those of the killed sessions `keys` that a ViUR request has written back since the kill.
 *
 * Unknown fields make a message malformed: a typo such as `{"usr": "a"}` must not turn into
 * "kill everyone" or into a silent no-op.
 */
export type KillMessageData =
  | { user: string | null; issuedAt?: string }
  | { users: string[]; issuedAt?: string }
  | { user: string | null; issuedAt: string; continuation: number }
  | { cleanup: { continuation?: number } }
  | { resweep: { keys: string[]; at: string; continuation?: number } };

/** A validated message. `continuation` is 0 for a message published from outside. */
export type KillMessage =
  | { kind: 'kill'; user: string | null; issuedAt: Date | undefined; continuation: number }
  | { kind: 'fanOut'; users: string[]; issuedAt: Date | undefined }
  | { kind: 'cleanup'; continuation: number }
  | { kind: 'resweep'; keys: string[]; at: Date; continuation: number };

/** What a kill targets, as the publisher and the CLI take it. */
export type KillTarget = { user: string | null } | { users: string[] };

/**
 * A message that can never be processed; retrying does not help, so it is logged and acknowledged.
 * Also what killMessageData (and so every publisher) throws for a target the consumer would refuse;
 * the kill route and the CLI turn it into a 400 or a usage error. `message` names the field and the
 * rule (`user: must not be empty`).
 *
 * @example
 * try {
 *   killMessageData({ user: '' });
 * } catch (err) {
 *   if (err instanceof MalformedKillMessageError) console.error(err.message); // 'user: must not be empty'
 * }
 */
export class MalformedKillMessageError extends Error {
  readonly code = 'malformed_kill_message';
  constructor(message: string) {
    super(message);
    this.name = 'MalformedKillMessageError';
  }
}

/**
 * The schemas are built on first use, so zod (which takes about as long to load as the Datastore
 * client) is not loaded at the cold start of every function: only where a kill message is checked.
 */
function buildSchemas(z: typeof Zod) {
  const userId = z
    .string()
    .min(1, 'must not be empty')
    .refine((u) => Buffer.byteLength(u, 'utf8') <= MAX_USER_BYTES, `must be at most ${MAX_USER_BYTES} bytes (UTF-8)`)
    // A lone surrogate has no UTF-8 form: Datastore refuses it on every delivery.
    .refine((u) => u.isWellFormed(), 'must be well-formed unicode (no lone surrogate)');

  const issuedAt = z.iso
    .datetime({ offset: true, message: 'must be an ISO 8601 date-time with Z or an offset, e.g. 2026-01-01T12:00:00Z' })
    .transform((s, ctx) => {
      const d = new Date(s);
      if (Number.isNaN(d.getTime())) {
        ctx.addIssue({ code: 'custom', message: 'is not a real date' });
        return z.NEVER;
      }
      return d;
    });

  const continuation = z.number().int().min(1).max(MAX_CONTINUATIONS);

  const killSchema = z.strictObject({
    user: userId.nullable(),
    issuedAt: issuedAt.optional(),
    continuation: continuation.optional(),
  });

  const fanOutSchema = z.strictObject({
    users: z.array(userId).min(1, 'must not be empty').max(MAX_USERS_PER_MESSAGE, `must hold at most ${MAX_USERS_PER_MESSAGE} users`),
    issuedAt: issuedAt.optional(),
  });

  const cleanupSchema = z.strictObject({
    cleanup: z.strictObject({ continuation: continuation.optional() }),
  });
  const resweepSchema = z.strictObject({
    resweep: z.strictObject({
      keys: z
        .array(z.string().min(1).max(500).regex(VIUR_ID_PATTERN, 'must be session keys of letters and digits'))
        .min(1, 'must not be empty')
        .max(MAX_RESWEEP_KEYS, `must hold at most ${MAX_RESWEEP_KEYS} keys`),
      at: issuedAt,
      continuation: continuation.optional(),
    }),
  });
  return { issuedAt, killSchema, fanOutSchema, cleanupSchema, resweepSchema };
}

let built: ReturnType<typeof buildSchemas> | undefined;

function schemas(): ReturnType<typeof buildSchemas> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  built ??= buildSchemas((require('zod') as typeof import('zod')).z);
  return built;
}

function describe(error: Zod.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.length > 0 ? issue.path.map(String).join('.') : 'message';
  if (issue.code === 'unrecognized_keys') return `unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  return `${path}: ${issue.message}`;
}

function check<T>(schema: Zod.ZodType<T, unknown>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new MalformedKillMessageError(describe(result.error));
  return result.data;
}

/**
 * Validates an already-decoded JSON value; throws MalformedKillMessageError. Duplicate users of a
 * fan-out are dropped; a message published from outside gets continuation 0.
 *
 * @example
 * validateKillMessage({ users: ['a', 'a'] }); // { kind: 'fanOut', users: ['a'], issuedAt: undefined }
 * validateKillMessage({ usr: 'a' }); // throws: 'message: needs "user", "users" or "cleanup"'
 */
export function validateKillMessage(value: unknown): KillMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new MalformedKillMessageError('message: must be a JSON object');
  }
  if ('cleanup' in value) {
    return { kind: 'cleanup', continuation: check(schemas().cleanupSchema, value).cleanup.continuation ?? 0 };
  }
  if ('resweep' in value) {
    const { resweep } = check(schemas().resweepSchema, value);
    return { kind: 'resweep', keys: resweep.keys, at: resweep.at, continuation: resweep.continuation ?? 0 };
  }
  if ('users' in value) {
    const m = check(schemas().fanOutSchema, value);
    // Duplicates would only cost a second, empty, unit of work; dropping them keeps the fan-out exact.
    return { kind: 'fanOut', users: [...new Set(m.users)], issuedAt: m.issuedAt };
  }
  if ('user' in value) {
    const m = check(schemas().killSchema, value);
    if (m.continuation !== undefined && m.issuedAt === undefined) {
      throw new MalformedKillMessageError('issuedAt: required in a continuation');
    }
    return { kind: 'kill', user: m.user, issuedAt: m.issuedAt, continuation: m.continuation ?? 0 };
  }
  throw new MalformedKillMessageError('message: needs "user", "users" or "cleanup"');
}

/**
 * Decodes message data (UTF-8 JSON) and validates it; throws MalformedKillMessageError. Refuses
 * empty data, more than MAX_MESSAGE_BYTES, invalid UTF-8 and invalid JSON before the schema runs.
 *
 * @example
 * parseKillMessageData(Buffer.from('{"user":null}')); // { kind: 'kill', user: null, issuedAt: undefined, continuation: 0 }
 */
export function parseKillMessageData(data: Buffer | string | undefined | null): KillMessage {
  if (data === undefined || data === null || data.length === 0) throw new MalformedKillMessageError('message: no data');
  if (data.length > MAX_MESSAGE_BYTES) throw new MalformedKillMessageError(`message: larger than ${MAX_MESSAGE_BYTES} bytes`);
  let text: string;
  try {
    text = typeof data === 'string' ? data : new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    throw new MalformedKillMessageError('message: data is not UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MalformedKillMessageError('message: data is not JSON');
  }
  return validateKillMessage(value);
}

/**
 * The JSON a target is published as; validated with the same rules the consumer applies, so a
 * caller learns of a bad target (MalformedKillMessageError) before anything is sent. Without
 * `issuedAt` the consumer takes the publish time as the cut-off.
 *
 * @example
 * killMessageData({ user: 'alice' }, new Date('2026-01-01T12:00:00Z')); // { user: 'alice', issuedAt: '2026-01-01T12:00:00.000Z' }
 * killMessageData({ users: ['a', 'b'] }); // { users: ['a', 'b'] }
 */
export function killMessageData(target: KillTarget, issuedAt?: Date): KillMessageData {
  const at = issuedAt === undefined ? {} : { issuedAt: isoTime(issuedAt) };
  const data: KillMessageData = 'users' in target ? { users: target.users, ...at } : { user: target.user, ...at };
  validateKillMessage(data);
  // What the consumer would refuse on delivery (ids of escaped characters can pass every other rule).
  if (encodeKillMessage(data).length > MAX_MESSAGE_BYTES)
    throw new MalformedKillMessageError(`message: larger than ${MAX_MESSAGE_BYTES} bytes`);
  return data;
}

/**
 * Parses an issuedAt value with the rules the consumer applies; throws MalformedKillMessageError.
 * ISO 8601 with `Z` or an offset only: a time without a zone would mean different instants on
 * different machines.
 *
 * @example
 * parseIssuedAt('2026-01-01T13:00:00+01:00').toISOString(); // '2026-01-01T12:00:00.000Z'
 * parseIssuedAt('yesterday'); // throws MalformedKillMessageError
 */
export function parseIssuedAt(text: string): Date {
  return check(schemas().issuedAt, text);
}

/**
 * `d` as the ISO 8601 text a message carries; MalformedKillMessageError for an invalid Date.
 *
 * @example
 * isoTime(new Date(0)); // '1970-01-01T00:00:00.000Z'
 */
export function isoTime(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new MalformedKillMessageError('issuedAt: is not a real date');
  return d.toISOString();
}

/**
 * The bytes published for `data`: its JSON text in UTF-8 (not validated here: see killMessageData).
 *
 * @example
 * await topic.publishMessage({ data: encodeKillMessage({ user: 'alice' }) });
 */
export function encodeKillMessage(data: KillMessageData): Buffer {
  return Buffer.from(JSON.stringify(data), 'utf8');
}
