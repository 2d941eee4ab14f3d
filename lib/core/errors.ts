/**
 * Typed failures of the session library. Adapters map `code`/`status` to their own protocol
 * (HTTP status and JSON error body); the library never knows about HTTP itself, the status is only a hint.
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

/** A key that is not in the session (strict get, delete). */
export class KeyNotFoundError extends SessionError {
  constructor(key: string) {
    super('not_found', `session has no key ${JSON.stringify(key.slice(0, 64))}`, 404);
  }
}

/** A data key that cannot be stored (empty, too long, reserved by Datastore). */
export class InvalidKeyError extends SessionError {
  constructor(message: string) {
    super('invalid_key', message, 400);
  }
}

/** A value that does not survive a JSON round trip unchanged. */
export class InvalidValueError extends SessionError {
  constructor(message: string) {
    super('invalid_value', message, 400);
  }
}

/** Session data that would exceed the configured size limit. */
export class DataTooLargeError extends SessionError {
  constructor(size: number, limit: number, message = `session data would be ${size} bytes, the limit is ${limit}`) {
    super('too_large', message, 413);
  }
}

/** Session data that would hold more keys than the configured maximum. */
export class TooManyKeysError extends SessionError {
  constructor(count: number, limit: number) {
    super('too_many_keys', `session data would hold ${count} keys, the limit is ${limit}`, 413);
  }
}

/** A user id that cannot be bound to a session. */
export class InvalidUserError extends SessionError {
  constructor(message: string) {
    super('invalid_user', message, 400);
  }
}

/** The store did not answer in time or failed; nothing was written. */
export class StoreUnavailableError extends SessionError {
  constructor(message = 'the session store is unavailable', override readonly cause?: unknown) {
    super('store_unavailable', message, 503);
  }
}

/**
 * The session this request loaded was ended (reset, logout or killed) by someone else before
 * this request saved; its changes are dropped rather than resurrecting the session.
 */
export class SessionEndedError extends SessionError {
  constructor() {
    super('session_ended', 'the session ended while this request was running', 409);
  }
}

/**
 * A one-time security key this request consumed was consumed by a concurrent request first.
 * Only seen by callers of load()/save(); withSession() re-runs on fresh data instead.
 */
export class SecurityKeyConflictError extends SessionError {
  constructor() {
    super('security_key_used', 'the security key was already used', 403);
  }
}

/** An environment variable with a value we cannot use: the process must not start. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}
