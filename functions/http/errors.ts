import type { Response } from '@google-cloud/functions-framework';
import { SessionError } from '../../shared/errors';

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

export function sendError(res: Response, err: HttpError): void {
  if (res.headersSent) return;
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.status(err.status).json({ error: { code: err.code, message: err.message } });
}
