import type { ServerResponse } from 'node:http';
import { SessionError } from '../../lib/core/errors';
import { describeError } from '../../lib/setup/credentials';
import { log } from '../../lib/setup/log';

/**
 * A failure with the HTTP status and the slug of the JSON error body (docs/api.md#errors), plus
 * headers the answer must carry. Throw it from a handler; respondWithError() writes it.
 *
 * @example
 * throw new HttpError(405, 'method_not_allowed', 'use POST', { Allow: 'POST' });
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * Maps what the library throws to HTTP; anything unknown is a 500 whose details stay in the log.
 * A SessionError keeps its code and status (a 503 gets `Retry-After: 1`).
 *
 * @example
 * toHttpError(new SessionEndedError()); // HttpError { status: 409, code: 'session_ended' }
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof SessionError) {
    return new HttpError(err.status, err.code, err.message, err.status === 503 ? { 'Retry-After': '1' } : {});
  }
  return new HttpError(500, 'internal', 'internal error');
}

/**
 * Why a 503 happened, for the request's log line (the client only sees the slug): the first line
 * of the underlying error, e.g. "no Google credentials: …" or "4 DEADLINE_EXCEEDED: …".
 * Undefined for an error without a cause.
 *
 * @example
 * const err = new StoreUnavailableError(undefined, new Error('4 DEADLINE_EXCEEDED: deadline exceeded\n…'));
 * failureCause(err); // '4 DEADLINE_EXCEEDED: deadline exceeded'
 */
export function failureCause(err: unknown): string | undefined {
  if (!(err instanceof Error) || err.cause === undefined) return undefined;
  return describeError(err.cause);
}

/**
 * The one writer of the JSON error body `{"error": {"code", "message"}}`, with the error's own
 * headers. It takes Node's plain response, so the body reader (which answers before express runs)
 * writes its refusals through it too. Nothing is written once an answer has begun.
 *
 * @example
 * sendError(res, new HttpError(413, 'too_large', 'the request body is too large'));
 * // 413 {"error":{"code":"too_large","message":"the request body is too large"}}
 */
export function sendError(res: ServerResponse, err: HttpError): void {
  if (res.headersSent) return;
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  writeJson(res, err.status, { error: { code: err.code, message: err.message } });
}

/**
 * The one path from a failure to an answer: any error thrown by a handler becomes its HTTP error,
 * a 500 leaves its stack in the log (the client sees only the slug), and the answer is written.
 * Returns the slug and cause for the request's log line. `where` names the function in the log.
 *
 * @example
 * try {
 *   await handle(req, res);
 * } catch (err) {
 *   const { code, cause } = respondWithError(res, err, 'sessionApi');
 * }
 */
export function respondWithError(res: ServerResponse, err: unknown, where: string): { code: string; cause: string | undefined } {
  const httpError = toHttpError(err);
  if (httpError.status === 500) {
    log('ERROR', `unhandled error in ${where}`, { stack: err instanceof Error ? err.stack : String(err) });
  }
  sendError(res, httpError);
  return { code: httpError.code, cause: failureCause(err) };
}

/**
 * A JSON answer that ends with a newline, so that `curl` output in a terminal stays readable.
 *
 * @example
 * sendJson(res, 202, { messageId }); // Content-Type: application/json; charset=utf-8
 */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  writeJson(res, status, body);
}

function writeJson(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.end(`${JSON.stringify(body)}\n`);
}
