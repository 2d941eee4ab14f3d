import { createHash } from 'node:crypto';
import { MAX_LISTED_SESSIONS, MAX_USER_AGENT_CHARS, SIGN_IN_PRECEDENCE_MS } from './limits';
import type { HeadRef, SessionHead, StorageKey } from '../store/sessionStore';

/**
 * A handle is 128 bits of SHA-256 over a domain-separated storage key: it names a session in the
 * device routes without revealing its id (the cookie) or even its database key, and it is far too
 * short to pass for a session id, so sent as a cookie it names nothing.
 */
const HANDLE_PREFIX = 'device-handle:';
const HANDLE_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/**
 * The public name of a stored session in the device routes and listings: 22 base64url characters
 * (128 bits of SHA-256 over the domain-separated storage key, see HANDLE_PREFIX), the same on every
 * instance, revealing neither the session id nor its storage key. Stores keep it with the session
 * (indexed), so that SessionManager.findLiveSession finds a `Device.id` a client sent back in one
 * query.
 *
 * @example
 * deviceHandle(digest(sessionId)); // 'WRfd3EiKQEJ8aUUGcBn6_Q': what the device list shows for that session
 */
export function deviceHandle(key: StorageKey): string {
  return createHash('sha256')
    .update(HANDLE_PREFIX + key, 'utf8')
    .digest()
    .subarray(0, 16)
    .toString('base64url');
}

/**
 * Cheap shape check before any store call: anything else can be no handle of ours.
 *
 * @example
 * isWellFormedHandle('WRfd3EiKQEJ8aUUGcBn6_Q'); // true
 * isWellFormedHandle('../etc'); // false
 */
export function isWellFormedHandle(value: string): boolean {
  return HANDLE_PATTERN.test(value);
}

/** A stored session, by key, with its head only (never its data). */
export type SessionRef = HeadRef;

/** One session of a user as the device routes and the library show it. Times are ms since the epoch. */
export interface Device {
  id: string;
  /** This is the session the request came with. */
  current: boolean;
  createdAt: number;
  lastSeen: number;
  userAgent: string | null;
}

/**
 * Most recently seen first, then most recently created, then by storage key: the order of the
 * device listing, the same on every instance.
 *
 * @example
 * const newestFirst = [...refs].sort(byRecency);
 */
export function byRecency(a: SessionRef, b: SessionRef): number {
  return b.head.lastSeen - a.head.lastSeen || b.head.createdAt - a.head.createdAt || byKey(a, b);
}

/**
 * The session cap's order: by last use, where a sign-in counts as use for SIGN_IN_PRECEDENCE_MS
 * (a minute) after it, i.e. by max(lastSeen, createdAt + 1 min), most recent first; then most
 * recently created; then by storage key. One total order that every instance computes alike from
 * the stored heads, so concurrent logins that each apply the cap agree on the survivors. A login's
 * new session ranks above every session signed in before it, even one used in the same
 * millisecond or later (a thief keeping a stolen session busy): only a later sign-in of the same
 * user outranks it. Past that minute, sessions rank by last use.
 *
 * @example
 * const firstToKeep = [...refs].sort(byCapRank);
 */
export function byCapRank(a: SessionRef, b: SessionRef): number {
  return capUse(b.head) - capUse(a.head) || b.head.createdAt - a.head.createdAt || byKey(a, b);
}

function capUse(head: SessionHead): number {
  return Math.max(head.lastSeen, head.createdAt + SIGN_IN_PRECEDENCE_MS);
}

function byKey(a: SessionRef, b: SessionRef): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * The keys of the sessions a cap of `max` ends: all ranked below the max-th by byCapRank
 * (SESSION_MAX_SESSIONS_PER_USER after a login).
 *
 * @example
 * await store.endSessions(beyondCap(await sessions.liveSessions('alice'), 5));
 */
export function beyondCap(live: readonly SessionRef[], max: number): StorageKey[] {
  return [...live]
    .sort(byCapRank)
    .slice(max)
    .map((s) => s.key);
}

/**
 * The most recently seen `limit` sessions as devices: each named by its deviceHandle, `current`
 * set on the one stored under `currentKey` (the session of the request, if any).
 *
 * @example
 * toDevices(await sessions.liveSessions('alice'), session.loadedKey); // [{ id, current: true, createdAt, lastSeen, userAgent }, …]
 */
export function toDevices(live: readonly SessionRef[], currentKey: StorageKey | null, limit = MAX_LISTED_SESSIONS): Device[] {
  return [...live]
    .sort(byRecency)
    .slice(0, limit)
    .map((s) => ({
      id: deviceHandle(s.key),
      current: s.key === currentKey,
      createdAt: s.head.createdAt,
      lastSeen: s.head.lastSeen,
      userAgent: s.head.userAgent,
    }));
}

/**
 * What is stored of a request's User-Agent header: at most 256 characters; none when empty.
 *
 * @example
 * storedUserAgent(req.headers['user-agent']); // 'Mozilla/5.0 (X11; Linux x86_64) …' or null
 */
export function storedUserAgent(header: string | undefined | null): string | null {
  if (typeof header !== 'string' || header.length === 0) return null;
  if (header.length <= MAX_USER_AGENT_CHARS) return header;
  return Array.from(header).slice(0, MAX_USER_AGENT_CHARS).join('');
}
