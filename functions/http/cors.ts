import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from '@google-cloud/functions-framework';

/**
 * CORS for the cross-origin deployment (page on www.example.com, API on sessions.example.com), and
 * for nobody else: only an Origin listed in SESSION_ALLOWED_ORIGINS, compared exactly, ever gets an
 * Access-Control-* header. The origin is reflected, never `*`, because the cookie travels with the
 * request (credentials) and `*` would hand every site's scripts the answers.
 */

/** The request headers a page sends: JSON bodies, the one-time key, the static key a script may set. */
export const ALLOWED_REQUEST_HEADERS = ['Content-Type', 'X-Security-Key', 'X-Static-Security-Key'] as const;
/** The response headers a page needs to read: the rotated one-time key and the revealed static key. */
export const EXPOSED_RESPONSE_HEADERS = ['X-Security-Key', 'Sec-X-ViUR-StaticSKey'] as const;
/** How long a browser may reuse a preflight answer (Chromium caps it at 7200 s). */
export const PREFLIGHT_MAX_AGE_SECONDS = 600;

/**
 * The request's Origin when it is one of the allowed ones, exactly as listed; otherwise undefined.
 * Never `null`, whatever the list holds: that is the Origin of any sandboxed iframe, file or
 * opaque-origin page (loadConfig refuses configured origins that would serialise to it).
 */
function allowedOrigin(req: IncomingMessage, allowed: readonly string[]): string | undefined {
  const origin = req.headers.origin;
  return origin !== undefined && origin !== 'null' && allowed.includes(origin) ? origin : undefined;
}

/** Adds `field` to the response's Vary header unless it is there already (or Vary is `*`). */
function addVary(res: ServerResponse, field: string): void {
  const current = res.getHeader('Vary');
  const fields = (Array.isArray(current) ? current.join(',') : String(current ?? ''))
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
  if (fields.some((f) => f === '*' || f.toLowerCase() === field.toLowerCase())) return;
  res.setHeader('Vary', [...fields, field].join(', '));
}

/**
 * Headers every response gets, before anything can fail, so that an allowed page can also read
 * the error bodies (a 403 `csrf` it should retry, a 413). `Vary: Origin` goes on every response,
 * allowed or not: a shared cache must never hand one origin's answer (with or without CORS
 * headers) to another. Takes Node's plain request and response: the body layer calls it before
 * express has seen the request.
 *
 * @example
 * applyCors(req, res, ['https://www.example.com']); // before anything can fail
 */
export function applyCors(req: IncomingMessage, res: ServerResponse, allowed: readonly string[]): void {
  addVary(res, 'Origin');
  const origin = allowedOrigin(req, allowed);
  if (origin === undefined) return;
  res.setHeader('Access-Control-Allow-Origin', origin);
  res.setHeader('Access-Control-Allow-Credentials', 'true');
  res.setHeader('Access-Control-Expose-Headers', EXPOSED_RESPONSE_HEADERS.join(', '));
}

/**
 * What every answer of the service carries, set before anything can fail: `Cache-Control:
 * no-store` (answers belong to one session) and applyCors's headers. sessionApi sets them first;
 * the body layer (functions/http/body.ts) sets them on every request before it reads the body, so
 * its own refusals (400, 408, 413, 415) and the framework's answers (its 404s, a bad path's 400)
 * carry them too.
 *
 * @example
 * applyAnswerHeaders(req, res, config.allowedOrigins);
 */
export function applyAnswerHeaders(req: IncomingMessage, res: ServerResponse, allowed: readonly string[]): void {
  res.setHeader('Cache-Control', 'no-store');
  applyCors(req, res, allowed);
}

/**
 * Answers OPTIONS on a known route without looking at the session: 204 with `Allow`; for an
 * allowed origin also the preflight answer (the route's methods, the accepted request headers, a
 * max-age). Any other origin gets the same 204 without a single Access-Control-* header, so its
 * browser refuses to send the real request.
 *
 * @example
 * if (req.method === 'OPTIONS') return answerOptions(req, res, config.allowedOrigins, ['GET', 'PATCH']);
 */
export function answerOptions(req: Request, res: Response, allowed: readonly string[], methods: readonly string[]): void {
  res.setHeader('Allow', methods.join(', '));
  if (allowedOrigin(req, allowed) !== undefined) {
    res.setHeader('Access-Control-Allow-Methods', methods.join(', '));
    res.setHeader('Access-Control-Allow-Headers', ALLOWED_REQUEST_HEADERS.join(', '));
    res.setHeader('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_SECONDS));
  }
  res.status(204).end();
}
