/**
 * Typed failures of the session library. Adapters map `code`/`status` to their own protocol
 * (HTTP status and JSON error body); the library never knows about HTTP itself, the status is only a hint.
 * Catch this base class to handle every refusal of the library in one place; the codes and the
 * statuses sessionApi answers with are listed in docs/api.md#errors.
 *
 * @example
 * try {
 *   session.set(key, value);
 * } catch (err) {
 *   if (!(err instanceof SessionError)) throw err;
 *   res.writeHead(err.status).end(JSON.stringify({ error: { code: err.code, message: err.message } }));
 * }
 */
export class SessionError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * A key that is not in the session (strict get, delete); code `not_found`, status 404.
 *
 * @example
 * session.getOrThrow('cart'); // throws KeyNotFoundError when the session has no "cart"
 */
export class KeyNotFoundError extends SessionError {
  constructor(key: string) {
    super('not_found', `session has no key ${JSON.stringify(key.slice(0, 64))}`, 404);
  }
}

/**
 * A data key that cannot be stored (empty, too long, reserved by Datastore); code `invalid_key`, 400.
 *
 * @example
 * session.set('__proto__', 1); // throws InvalidKeyError: keys of the form __name__ are reserved
 */
export class InvalidKeyError extends SessionError {
  constructor(message: string) {
    super('invalid_key', message, 400);
  }
}

/**
 * A value that does not survive a JSON round trip unchanged; code `invalid_value`, 400.
 *
 * @example
 * session.set('when', new Date() as unknown as JsonValue); // throws InvalidValueError: value is not a plain object
 */
export class InvalidValueError extends SessionError {
  constructor(message: string) {
    super('invalid_value', message, 400);
  }
}

/**
 * Session data that would exceed the configured size limit (SESSION_MAX_DATA_BYTES) or hold more
 * than MAX_DATA_NODES JSON values, or an entity the store refuses as too large; code `too_large`,
 * 413. Nothing is written.
 *
 * @example
 * new DataTooLargeError(800_000, 786_432).message; // 'session data would be 800000 bytes, the limit is 786432'
 */
export class DataTooLargeError extends SessionError {
  constructor(size: number, limit: number, message = `session data would be ${size} bytes, the limit is ${limit}`) {
    super('too_large', message, 413);
  }
}

/**
 * Session data that would hold more keys than the configured maximum (SESSION_MAX_DATA_KEYS);
 * code `too_many_keys`, 413. Deleting keys stays possible.
 *
 * @example
 * new TooManyKeysError(10_001, 10_000).code; // 'too_many_keys'
 */
export class TooManyKeysError extends SessionError {
  constructor(count: number, limit: number) {
    super('too_many_keys', `session data would hold ${count} keys, the limit is ${limit}`, 413);
  }
}

/**
 * A user id that cannot be bound to a session (see userIdProblem); code `invalid_user`, 400.
 *
 * @example
 * session.login('__guest__'); // throws InvalidUserError: __guest__ is not a user id
 */
export class InvalidUserError extends SessionError {
  constructor(message: string) {
    super('invalid_user', message, 400);
  }
}

/**
 * The store did not answer in time or failed; nothing was written. Code `store_unavailable`, 503:
 * the request may be retried. `cause` keeps the underlying error for the log, never for the client.
 *
 * @example
 * if (err instanceof StoreUnavailableError) res.writeHead(503, { 'Retry-After': '1' }).end();
 */
export class StoreUnavailableError extends SessionError {
  constructor(
    message = 'the session store is unavailable',
    override readonly cause?: unknown,
  ) {
    super('store_unavailable', message, 503);
  }
}

/**
 * The session this request loaded was ended (reset, logout or killed) by someone else before
 * this request saved; its changes are dropped rather than resurrecting the session. Code
 * `session_ended`, 409: also thrown by load() for a cookie of a session rotated away moments ago.
 *
 * @example
 * if (err instanceof SessionEndedError) res.writeHead(409).end(); // and no Set-Cookie
 */
export class SessionEndedError extends SessionError {
  constructor() {
    super('session_ended', 'the session ended while this request was running', 409);
  }
}

/**
 * A one-time security key this request consumed was consumed by a concurrent request first.
 * Only seen by callers of load()/save(); withSession() re-runs on fresh data instead. Code
 * `security_key_used`, 403.
 *
 * @example
 * if (session.validateSecurityKey(key)) await sessions.save(session); // may throw SecurityKeyConflictError
 */
export class SecurityKeyConflictError extends SessionError {
  constructor() {
    super('security_key_used', 'the security key was already used', 403);
  }
}

/**
 * An environment variable with a value we cannot use: the process must not start. `variable` names
 * it, and the message starts with it (configuration: README.md#configuration).
 *
 * @example
 * loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1', SESSION_LIFETIME_SECONDS: 'soon' });
 * // throws ConfigError 'SESSION_LIFETIME_SECONDS: "soon" is not valid: expected an integer'
 */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}
