import { dirname } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BODY_TIMEOUT_MS, MAX_PUSH_BYTES } from '../../lib/core/limits';
import { applyAnswerHeaders } from './cors';
import { HttpError, sendError } from './errors';

type BodyRequest = IncomingMessage & { body?: unknown; rawBody?: Buffer; jsonBody?: boolean };

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json$/i;

function mediaType(req: IncomingMessage): { type: string; charset: string | undefined } | null {
  const header = req.headers['content-type'];
  if (!header) return null;
  const params = header.split(';').map((s) => s.trim());
  // split always yields at least one part; no lower-casing of the type: JSON_TYPE ignores case.
  const type = params.shift()!;
  const charset = params
    .find((p) => /^charset=/i.test(p))
    ?.slice(8)
    .replace(/"/g, '')
    .toLowerCase();
  return { type, charset };
}

/** Whether a body follows the headers (the test body-parser applies too). */
function hasBody(req: IncomingMessage): boolean {
  return (
    req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')
  );
}

/**
 * Reads the body up to `limit` bytes within `timeoutMs`, handing each chunk to `onChunk` (which
 * keeps it or drops it: a dropped body costs no memory whatever is sent). Past the limit it stops
 * reading at once and fails with 413; past the deadline with 408 (and `Connection: close`); what
 * the client still sends is lingerThenClose's to drop, up to its bound.
 */
function readLimited(req: IncomingMessage, limit: number, timeoutMs: number, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const stop = (err: HttpError) => {
      clearTimeout(timer);
      // Not only paused: lingerThenClose resumes the request, and its chunks must not come here.
      req.removeListener('data', onData);
      req.pause();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return stop(new HttpError(413, 'too_large', `the request body exceeds ${limit} bytes`));
      onChunk(chunk);
    };
    const timer = setTimeout(
      () =>
        stop(
          new HttpError(408, 'request_timeout', `the request body did not arrive within ${timeoutMs / 1000} s`, { Connection: 'close' }),
        ),
      timeoutMs,
    );
    req.on('data', onData);
    req.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
    // A client that disconnects mid-body (Node destroys the request with ECONNRESET "aborted").
    req.on('error', () => stop(new HttpError(400, 'bad_request', 'the request body could not be read')));
  });
}

const drop = (): void => {};

/**
 * Bounds every body and parses JSON ones ourselves, before functions-framework's parsers (which
 * buffer any type, refuse top-level primitives and answer in HTML: docs/design/request-bodies.md).
 * Sets `req.body` (a JSON value, or undefined for an empty or non-JSON body), `req.rawBody` and
 * `req.jsonBody`; a body of another type is read and dropped, never buffered. Throws HttpError:
 * 413 past `limit` bytes, 408 when the body has not arrived within `timeoutMs`, 415 for a
 * non-UTF-8 JSON body, 400 for invalid JSON or a broken upload.
 *
 * @example
 * await readJsonBody(req, requestBodyLimit(786_432));
 * if (req.jsonBody) console.log(req.body); // e.g. { user: 'alice' }
 */
export async function readJsonBody(req: BodyRequest, limit: number, timeoutMs = BODY_TIMEOUT_MS): Promise<void> {
  if (!hasBody(req)) return;
  const length = Number(req.headers['content-length']);
  if (Number.isFinite(length) && length > limit) throw new HttpError(413, 'too_large', `the request body exceeds ${limit} bytes`);
  const media = mediaType(req);
  if (!media || !JSON_TYPE.test(media.type)) {
    await readLimited(req, limit, timeoutMs, drop);
    req.body = undefined;
    return;
  }
  if (media.charset && media.charset !== 'utf-8' && media.charset !== 'utf8') {
    throw new HttpError(415, 'unsupported_media_type', 'JSON bodies must be UTF-8');
  }
  const chunks: Buffer[] = [];
  await readLimited(req, limit, timeoutMs, (chunk) => chunks.push(chunk));
  const raw = Buffer.concat(chunks);
  req.rawBody = raw;
  req.jsonBody = true;
  const text = raw.toString('utf8');
  if (text.trim() === '') {
    req.body = undefined;
    return;
  }
  try {
    req.body = JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'bad_json', 'the request body is not valid JSON');
  }
}

/** Room for JSON framing around the largest value the data limit allows. */
export const DATA_FRAMING_BYTES = 64 * 1024;

/**
 * The body limit of the three functions (one hook serves every function of a process): what the
 * API needs for the largest data value plus its framing, or what the kill function needs for the
 * push of the largest kill message (MAX_PUSH_BYTES), whichever is larger. So every kill the API
 * accepts can be delivered, whatever SESSION_MAX_DATA_BYTES is.
 *
 * @example
 * requestBodyLimit(786_432); // 1_463_640: the push of a 1 MiB kill message
 * requestBodyLimit(1_000_000); // 1_463_640
 */
export function requestBodyLimit(maxDataBytes: number): number {
  return Math.max(maxDataBytes + DATA_FRAMING_BYTES, MAX_PUSH_BYTES);
}

/**
 * What the rest of a refused body may cost before the connection is dropped: only bandwidth and a
 * little CPU, never memory (why 16 MiB: docs/design/request-bodies.md).
 */
export const LINGER_BYTES = 16 * 1024 * 1024;
const LINGER_MS = 1000;
/** Set once by installRequestHooks (tests shorten it). */
let lingerMs = LINGER_MS;

/**
 * After refusing a body that was not read to its end, the rest is dropped as it arrives for at
 * most LINGER_BYTES or LINGER_MS, then the connection is closed: so a client still sending sees
 * the answer instead of a reset (docs/design/request-bodies.md).
 */
function lingerThenClose(req: IncomingMessage): void {
  if (req.complete) return;
  let seen = 0;
  const close = () => req.socket.destroy();
  const timer = setTimeout(close, lingerMs);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > LINGER_BYTES) {
      clearTimeout(timer);
      close();
    }
  });
  req.on('end', () => clearTimeout(timer));
  req.resume();
}

function sendRaw(req: IncomingMessage, res: ServerResponse, err: HttpError): void {
  // A handler failed after its answer began: the only honest signal left is a cut connection (what
  // express's own final handler does); the client sees an incomplete answer, never a spliced one.
  if (res.headersSent) {
    req.socket.destroy();
    return;
  }
  // Before the answer, not after it: when an answer finishes, Node dumps a body nobody is reading,
  // and dumping removes every 'data' listener, the byte bound's included.
  lingerThenClose(req);
  sendError(res, err);
}

/** What express would otherwise answer with an HTML page (and, outside production, a stack trace). */
function finalError(err: unknown, req: IncomingMessage, res: ServerResponse): void {
  if (!err) return sendRaw(req, res, new HttpError(404, 'not_found', 'no such route'));
  // A primitive passed to next() has no status either (NaN: the 500 below).
  const status = Number((err as { status?: unknown }).status);
  if (status === 413) return sendRaw(req, res, new HttpError(413, 'too_large', 'the request body is too large'));
  if (status === 415) return sendRaw(req, res, new HttpError(415, 'unsupported_media_type', 'unsupported body encoding'));
  if (status >= 400 && status < 500) return sendRaw(req, res, new HttpError(400, 'bad_request', 'the request could not be parsed'));
  sendRaw(req, res, new HttpError(500, 'internal', 'internal error'));
}

let installed = false;

/** What installRequestHooks takes besides the body limit; tests shorten the times. */
export interface RequestHookOptions {
  /** How long a refused body's connection is kept open (default LINGER_MS). */
  lingerMs?: number;
  /** How long a body may take to arrive (default BODY_TIMEOUT_MS). */
  bodyTimeoutMs?: number;
  /**
   * The origins that get CORS headers (SESSION_ALLOWED_ORIGINS), asked on every request; default
   * none. Every answer, the hooks' own included, gets applyAnswerHeaders() with them.
   */
  allowedOrigins?: () => readonly string[];
}

/**
 * Hooks into the express application functions-framework builds (it offers no middleware hook):
 * every answer gets `Cache-Control: no-store`, `Vary: Origin` and CORS for an allowed origin
 * before anything else happens, bodies are bounded (in size and time) and parsed before its
 * parsers, and errors that never reach a function get the JSON error body. Must run before the
 * framework creates its server, i.e. when the module registering the functions is loaded
 * (docs/design/request-bodies.md). Only the first call counts. One hook serves every function of
 * the process (`npm start` runs all three in one).
 *
 * @example
 * // in functions/index.ts, before functions.http(…)
 * installRequestHooks(requestBodyLimit(config.session.maxDataBytes), { allowedOrigins: () => startupConfig().allowedOrigins });
 */
export function installRequestHooks(maxBodyBytes: number, options: RequestHookOptions = {}): void {
  if (installed) return;
  installed = true;
  lingerMs = options.lingerMs ?? LINGER_MS;
  const bodyTimeoutMs = options.bodyTimeoutMs ?? BODY_TIMEOUT_MS;
  const allowedOrigins = options.allowedOrigins ?? (() => []);
  const frameworkDir = dirname(require.resolve('@google-cloud/functions-framework'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require(require.resolve('express', { paths: [frameworkDir] })) as { application: Record<string, unknown> };
  type Handle = (this: unknown, req: BodyRequest, res: ServerResponse, next?: (err?: unknown) => void) => void;
  const original = express.application.handle as Handle;
  express.application.handle = function handle(this: unknown, req: BodyRequest, res: ServerResponse, next?: (err?: unknown) => void) {
    const done = next ?? ((err?: unknown) => finalError(err, req, res));
    // First: whatever answers this request (this layer, the framework, the function) carries them.
    applyAnswerHeaders(req, res, allowedOrigins());
    readJsonBody(req, maxBodyBytes, bodyTimeoutMs).then(
      () => original.call(this, req, res, done),
      (err: unknown) =>
        sendRaw(req, res, err instanceof HttpError ? err : new HttpError(400, 'bad_request', 'the request could not be read')),
    );
  } satisfies Handle;
}
