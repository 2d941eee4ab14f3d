import { toHttpError } from '../../../functions/http/errors';
import {
  ConfigError,
  DataTooLargeError,
  InvalidKeyError,
  InvalidUserError,
  InvalidValueError,
  KeyNotFoundError,
  SecurityKeyConflictError,
  SessionEndedError,
  SessionError,
  StoreUnavailableError,
  TooManyKeysError,
} from '../../../lib/core/errors';

/**
 * What a client sees of each library failure: the HTTP status and the JSON error body's code and
 * message (docs/api.md#errors), and what a caller catching them can rely on (name, cause).
 */
describe('library errors', () => {
  test.each([
    [new KeyNotFoundError('k'), 404, 'not_found', 'session has no key "k"'],
    [new InvalidKeyError('bad key'), 400, 'invalid_key', 'bad key'],
    [new InvalidValueError('bad value'), 400, 'invalid_value', 'bad value'],
    [new DataTooLargeError(11, 10), 413, 'too_large', 'session data would be 11 bytes, the limit is 10'],
    [new TooManyKeysError(4, 3), 413, 'too_many_keys', 'session data would hold 4 keys, the limit is 3'],
    [new InvalidUserError('bad user'), 400, 'invalid_user', 'bad user'],
    [new StoreUnavailableError(), 503, 'store_unavailable', 'the session store is unavailable'],
    [new SessionEndedError(), 409, 'session_ended', 'the session ended while this request was running'],
    [new SecurityKeyConflictError(), 403, 'security_key_used', 'the security key was already used'],
  ])('%p: status %d, code %s', (err, status, code, message) => {
    expect(err).toBeInstanceOf(SessionError);
    expect([err.status, err.code, err.message]).toEqual([status, code, message]);
    expect(err.name).toBe(err.constructor.name);
    const http = toHttpError(err);
    expect([http.status, http.code, http.message]).toEqual([status, code, message]);
  });

  test('a missing key is named in the message, at most its first 64 characters', () => {
    expect(new KeyNotFoundError('x'.repeat(100)).message).toBe(`session has no key "${'x'.repeat(64)}"`);
  });

  test('a size refusal may carry its own message; an unavailable store keeps its cause for the log', () => {
    expect(new DataTooLargeError(0, 0, 'the entity is too large').message).toBe('the entity is too large');
    const cause = new Error('4 DEADLINE_EXCEEDED');
    const e = new StoreUnavailableError('slow', cause);
    expect([e.message, e.cause]).toEqual(['slow', cause]);
    expect(new StoreUnavailableError().cause).toBeUndefined();
  });

  test('a configuration error names the variable first, so the start-up log says what to fix', () => {
    const e = new ConfigError('SESSION_KIND', 'is bad');
    expect([e.message, e.variable, e.name]).toEqual(['SESSION_KIND: is bad', 'SESSION_KIND', 'ConfigError']);
    expect(e).toBeInstanceOf(Error);
  });
});
