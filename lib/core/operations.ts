import { DataTooLargeError, SecurityKeyConflictError, TooManyKeysError } from './errors';
import { copyData, dataNodes, dataSize, emptyData, type JsonValue } from './json';
import { MAX_DATA_NODES, TOMBSTONE_SECONDS } from './limits';
import type { SessionSettings } from './settings';
import type { StoredSession } from '../store/sessionStore';

/**
 * A change this request made. Saving replays them onto the stored entity inside a transaction, so
 * two requests that change different keys of one session both survive. Random values are drawn
 * when the operation is recorded, so a replay is deterministic and may be repeated on contention.
 */
export type Operation =
  | { type: 'set'; key: string; value: JsonValue }
  | { type: 'delete'; key: string }
  | {
      type: 'reset';
      id: string;
      staticKeyDigest: string;
      keep: readonly string[];
      user: string | null;
      userAgent: string | null;
      /** Which call started the session over (session events tell them apart); absent: reset. */
      cause?: 'login' | 'logout' | 'reset';
    }
  | { type: 'addKeys'; digests: string[] }
  | { type: 'consumeKey'; digest: string };

/**
 * The one place where operations change a stored session, used both for the request's local view
 * and for the replay onto what the store holds at save time. Returns a new StoredSession (`base`
 * is never changed); throws TooManyKeysError, DataTooLargeError (SESSION_MAX_DATA_BYTES, or more
 * than MAX_DATA_NODES JSON values) or SecurityKeyConflictError when the result of a change would
 * break a limit or a consumed key is no longer there.
 *
 * @example
 * const next = applyOperations(stored, [{ type: 'set', key: 'language', value: 'de' }], clock.now(), settings);
 */
export function applyOperations(base: StoredSession, ops: readonly Operation[], now: number, settings: SessionSettings): StoredSession {
  let state: StoredSession = { ...base, data: copyData(base.data), securityKeyDigests: [...base.securityKeyDigests] };
  let dataChanged = false;
  for (const op of ops) {
    switch (op.type) {
      case 'set':
        state.data[op.key] = op.value;
        dataChanged = true;
        break;
      case 'delete':
        delete state.data[op.key];
        break;
      case 'reset': {
        const data = emptyData();
        for (const k of op.keep) if (Object.hasOwn(state.data, k)) data[k] = state.data[k]!;
        state = freshState(now, op.staticKeyDigest, settings, op.user, data, op.userAgent);
        break;
      }
      case 'addKeys':
        state.securityKeyDigests.push(...op.digests);
        state.securityKeyDigests.splice(0, Math.max(0, state.securityKeyDigests.length - settings.maxSecurityKeys));
        break;
      case 'consumeKey': {
        const at = state.securityKeyDigests.indexOf(op.digest);
        if (at < 0) throw new SecurityKeyConflictError();
        state.securityKeyDigests.splice(at, 1);
        break;
      }
    }
  }
  if (dataChanged) {
    const keys = Object.keys(state.data).length;
    if (keys > settings.maxDataKeys) throw new TooManyKeysError(keys, settings.maxDataKeys);
    const size = dataSize(state.data);
    if (size > settings.maxDataBytes) throw new DataTooLargeError(size, settings.maxDataBytes);
    // Checked on a change only, as the other limits: data stored before the bound still loads, and
    // deleting keys (no 'set') stays possible.
    if (dataNodes(state.data, MAX_DATA_NODES) > MAX_DATA_NODES) {
      const message = `session data would hold more than ${MAX_DATA_NODES} JSON values, the limit is ${MAX_DATA_NODES}`;
      throw new DataTooLargeError(MAX_DATA_NODES + 1, MAX_DATA_NODES, message);
    }
  }
  return state;
}

/**
 * A new session's stored state at `now`: no data unless given, no one-time keys, created and seen
 * now, expiring by expiry(). `staticKeyDigest` is the digest of the static key it will reveal.
 *
 * @example
 * const state = freshState(clock.now(), digest(staticKey), settings); // a guest session: { user: null, data: {}, … }
 */
export function freshState(
  now: number,
  staticKeyDigest: string,
  settings: SessionSettings,
  user: string | null = null,
  data = emptyData(),
  userAgent: string | null = null,
): StoredSession {
  return {
    data,
    user,
    lastSeen: now,
    createdAt: now,
    expiresAt: expiry(settings, now, now),
    staticKeyDigest,
    securityKeyDigests: [],
    userAgent,
  };
}

/**
 * The earlier of the idle and the absolute end, so that the cleanup query and the TTL policy on
 * expiresAt find a session that ends by its age too. Times are ms since the epoch.
 *
 * @example
 * expiry({ ...settings, lifetimeSeconds: 3600, absoluteLifetimeSeconds: 0 }, createdAt, now); // now + 3_600_000
 */
export function expiry(settings: SessionSettings, createdAt: number, now: number): number {
  const idle = now + settings.lifetimeSeconds * 1000;
  const absolute = settings.absoluteLifetimeSeconds;
  return absolute > 0 ? Math.min(idle, createdAt + absolute * 1000) : idle;
}

/**
 * What stays of a rotated session: no data or keys, its user and creation time (so kills find it).
 * It is ended at `now` and expires TOMBSTONE_SECONDS later.
 *
 * @example
 * writes.put.push({ key: oldKey, session: tombstone(previous, clock.now()) });
 */
export function tombstone(previous: StoredSession, now: number): StoredSession {
  return {
    data: emptyData(),
    user: previous.user,
    lastSeen: now,
    createdAt: previous.createdAt,
    expiresAt: now + TOMBSTONE_SECONDS * 1000,
    staticKeyDigest: '',
    securityKeyDigests: [],
    endedAt: now,
    userAgent: previous.userAgent,
  };
}

/**
 * Anything worth storing (lazy creation): a user, data, or a handed-out key.
 *
 * @example
 * holdsSomething(freshState(now, staticKeyDigest, settings)); // false: an empty guest session is not stored
 */
export function holdsSomething(s: StoredSession): boolean {
  if (s.user !== null || s.securityKeyDigests.length > 0) return true;
  for (const _ in s.data) return true;
  return false;
}
