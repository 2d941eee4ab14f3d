import { createHmac } from 'node:crypto';
import { StoreUnavailableError } from '../core/errors';
import { GUEST_USER } from '../core/limits';

/**
 * One JSON object per line on stdout/stderr: Cloud Logging reads `severity` and `message` and
 * keeps the rest as jsonPayload. On a terminal (a person running `npm start` or functions-framework
 * by hand) the same record is printed in a readable form instead. Callers pass only what is safe to
 * log: never session ids, security keys or tokens.
 *
 * Severity: the Cloud Logging severities this service writes.
 */
export type Severity = 'DEBUG' | 'INFO' | 'NOTICE' | 'WARNING' | 'ERROR';

/** Structured fields of a log line (kept as jsonPayload). */
export type LogFields = Record<string, unknown>;

/** Where log lines go: one JSON text per call, with its severity. */
export type LogSink = (line: string, severity: Severity) => void;

interface Output {
  isTTY?: boolean;
  write(text: string): unknown;
}

/** A value as a person reads it in a log line: strings as they are, anything else as JSON. */
function shown(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
}

/**
 * `12:00:01.234 WARNING message  key=value …`, nested values as JSON; the request record's
 * `httpRequest` shortened to what a person scans for (status and latency). A line that is not
 * JSON is returned as it is.
 *
 * @example
 * prettyLine('{"severity":"INFO","message":"kill started","user":"alice"}');
 * // '12:00:01.234 INFO    kill started  user=alice'
 */
export function prettyLine(line: string, now: Date = new Date()): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { severity, message, httpRequest, ...rest } = record;
  const parts = [`${now.toISOString().slice(11, 23)} ${shown(severity ?? 'DEFAULT').padEnd(7)} ${shown(message ?? '')}`];
  if (httpRequest && typeof httpRequest === 'object') parts.push(`(${shown((httpRequest as { latency?: unknown }).latency ?? '')})`);
  for (const [k, v] of Object.entries(rest)) parts.push(`${k}=${shown(v)}`);
  return parts.join('  ');
}

/**
 * JSON lines, unless the stream is a terminal. WARNING and ERROR go to the error stream.
 *
 * @example
 * setLogSink(streamSink(process.stdout, process.stderr)); // the default
 */
export function streamSink(out: Output, err: Output): LogSink {
  return (line, severity) => {
    const stream = severity === 'ERROR' || severity === 'WARNING' ? err : out;
    stream.write(`${stream.isTTY ? prettyLine(line) : line}\n`);
  };
}

const defaultSink: LogSink = streamSink(process.stdout, process.stderr);

let sink: LogSink = defaultSink;

/**
 * Tests capture every line to prove that no secret is logged. `null` restores the default sink.
 *
 * @example
 * const lines: string[] = [];
 * setLogSink((line) => lines.push(line));
 * // … run the code under test …
 * setLogSink(null);
 */
export function setLogSink(next: LogSink | null): void {
  sink = next ?? defaultSink;
}

/**
 * Writes one structured log line: `severity`, `message` and the fields, as one JSON object. Pass
 * only what is safe to log (see above).
 *
 * @example
 * log('INFO', 'cleanup finished', { deleted: 1520, batches: 4 });
 */
export function log(severity: Severity, message: string, fields: LogFields = {}): void {
  sink(JSON.stringify({ severity, message, ...fields }), severity);
}

/**
 * The class or code of an error only: messages of client errors may quote request details.
 *
 * @example
 * log('WARNING', 'kill message failed', { error: errorName(err) }); // e.g. 'store_unavailable' or 'TypeError'
 */
export function errorName(err: unknown): string {
  if (err instanceof StoreUnavailableError) return err.code;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return code === undefined ? err.name : `${err.name}:${shown(code)}`;
  }
  return typeof err;
}

/** Hex digits of the user digest kept in log lines: 64 bits, enough to tell any two users of a deployment apart. */
export const USER_DIGEST_HEX_DIGITS = 16;

/**
 * The keyed digest (HMAC-SHA-256, truncated) that stands for a user id in log lines: the same user
 * always gets the same digest under one key, so an operator who knows the id (and the key) finds
 * the user's lines, while the lines alone do not give the id away.
 *
 * @example
 * userDigest('alice@example.com', 'the deployment key'); // 16 hex digits, the same on every call
 */
export function userDigest(user: string, key: string): string {
  return createHmac('sha256', key).update(user, 'utf8').digest('hex').slice(0, USER_DIGEST_HEX_DIGITS);
}

/**
 * The digest key used when SESSION_LOG_DIGEST_KEY is unset: derived from the project id, so it is
 * stable across instances and restarts, but not secret (docs/operations.md says what that means).
 *
 * @example
 * userDigest('alice', derivedDigestKey('my-project'));
 */
export function derivedDigestKey(projectId: string): string {
  return `viur-session-functions/log-digest/${projectId}`;
}

/** How a log line names a user: `userDigest` by default, `user` only by the operator's opt-in. */
export interface UserLogOptions {
  logUserIds: 'digest' | 'raw';
  logDigestKey: string;
}

/**
 * The log fields that name `user`: `{ user }` with the raw id only when the operator opted in,
 * otherwise `{ userDigest }`. `null` (every session) and the guest marker are not personal data and
 * stay as they are, under `user`.
 *
 * @example
 * log('INFO', 'kill started', { ...userLogFields('alice', config) }); // { userDigest: '…' }
 */
export function userLogFields(user: string | null, options: UserLogOptions): LogFields {
  if (user === null || user === GUEST_USER || options.logUserIds === 'raw') return { user };
  return { userDigest: userDigest(user, options.logDigestKey) };
}
