import { GUEST_USER, MAX_USER_BYTES } from './limits';

/**
 * Why `user` cannot be bound to a session, or null when it can: the one rule for user ids, shared
 * by login and the privileged routes that name a user.
 *
 * @example
 * userIdProblem('alice'); // null
 * userIdProblem('__guest__'); // '__guest__ is not a user id'
 */
export function userIdProblem(user: unknown): string | null {
  if (typeof user !== 'string' || user.length === 0) return 'a user id must be a non-empty string';
  if (user === GUEST_USER) return `${GUEST_USER} is not a user id`;
  if (Buffer.byteLength(user, 'utf8') > MAX_USER_BYTES) return `a user id may have at most ${MAX_USER_BYTES} bytes`;
  // Datastore refuses strings that are not valid UTF-8, which a lone surrogate cannot become.
  if (!user.isWellFormed()) return 'a user id must be well-formed unicode (no lone surrogate)';
  return null;
}
