import { assertValidKey } from '../../lib/core/json';
import { HttpError } from '../http/errors';
import type { Context } from './pipeline';

/** Reading what a request carries: its JSON body, its path parameters, its query. */

/**
 * The parsed JSON body: 415 when the body is not JSON, 400 when it is missing or (for 'object') not an object.
 *
 * @example
 * const values = jsonBody(ctx, 'object') as Record<string, JsonValue>; // PATCH /session
 * const value = jsonBody(ctx, 'value') as JsonValue; // PUT /session/data/{key}: any JSON, "text" too
 */
export function jsonBody(ctx: Context, what: 'object' | 'value'): unknown {
  if (!ctx.req.jsonBody) throw new HttpError(415, 'unsupported_media_type', 'the body must be application/json');
  const body: unknown = ctx.req.body;
  if (body === undefined) throw new HttpError(400, 'bad_request', 'a JSON body is required');
  if (what === 'object' && (typeof body !== 'object' || body === null || Array.isArray(body))) {
    throw new HttpError(400, 'bad_request', 'the body must be a JSON object');
  }
  return body;
}

/**
 * A string field of the JSON object body; 400 when it is missing or not a string.
 *
 * @example
 * const user = stringField(ctx, 'user'); // POST /session/login {"user": "alice"}
 */
export function stringField(ctx: Context, field: string): string {
  const value = (jsonBody(ctx, 'object') as Record<string, unknown>)[field];
  if (typeof value !== 'string') throw new HttpError(400, 'bad_request', `"${field}" must be a string`);
  return value;
}

/**
 * A path parameter, percent-decoded; `code` is the error slug of an undecodable one.
 *
 * @example
 * pathParam(ctx, 'id'); // 'WRfd3EiKQEJ8aUUGcBn6_Q'
 */
export function pathParam(ctx: Context, name: string, code = 'bad_request'): string {
  try {
    return decodeURIComponent(ctx.params[name]!);
  } catch {
    throw new HttpError(400, code, `the ${name} is not valid percent-encoding`);
  }
}

/**
 * The `{key}` of the data routes: decoded and checked as a data key (400 `invalid_key` otherwise).
 *
 * @example
 * keyParam(ctx); // 'cart items' for /session/data/cart%20items
 */
export function keyParam(ctx: Context): string {
  const key = pathParam(ctx, 'key', 'invalid_key');
  assertValidKey(key);
  return key;
}

/**
 * `?count=` of the security-key route: 0 when absent, else 1 to SESSION_MAX_SECURITY_KEYS (400 otherwise).
 *
 * @example
 * keyCount(ctx); // 4 for GET /session/security-key?count=4
 */
export function keyCount(ctx: Context): number {
  const raw = ctx.req.query.count;
  if (raw === undefined) return 0;
  const max = ctx.rt.config.session.maxSecurityKeys;
  const n = typeof raw === 'string' && /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= max)) throw new HttpError(400, 'bad_request', `count must be an integer from 1 to ${max}`);
  return n;
}
