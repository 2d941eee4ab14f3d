import type { Response } from '@google-cloud/functions-framework';
import { describeError } from '../../lib/setup/credentials';
import { SessionError } from '../../lib/core/errors';

/** A failure with the HTTP status and the slug of the JSON error body. */
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

/** Maps what the library throws to HTTP; anything unknown is a 500 whose details stay in the log. */
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
 */
export function failureCause(err: unknown): string | undefined {
  if (!(err instanceof Error) || err.cause === undefined) return undefined;
  return describeError(err.cause);
}

export function sendError(res: Response, err: HttpError): void {
  if (res.headersSent) return;
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  sendJson(res, err.status, { error: { code: err.code, message: err.message } });
}

/** A JSON answer that ends with a newline, so that `curl` output in a terminal stays readable. */
export function sendJson(res: Response, status: number, body: unknown): void {
  res.status(status).type('application/json').send(`${JSON.stringify(body)}\n`);
}
