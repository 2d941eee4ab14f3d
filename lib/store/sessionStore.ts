import type { OutboxRecord } from '../core/events';
import type { SessionData } from '../core/json';

/** The name a session is stored under: the SHA-256 hex digest of its id, never the id itself. */
export type StorageKey = string;

/** One session as the store keeps it. Times are milliseconds since the epoch. */
export interface StoredSession {
  data: SessionData;
  /** null for a guest session (stored as GUEST_USER so the kill query can find guests). */
  user: string | null;
  lastSeen: number;
  createdAt: number;
  /** lastSeen + lifetime; the cleanup query and the database TTL policy use it. */
  expiresAt: number;
  staticKeyDigest: string;
  /** Digests of the one-time security keys currently valid, oldest first. */
  securityKeyDigests: string[];
  /**
   * Set on a tombstone: the session was rotated away (login, logout, reset) at this time. Its entity
   * stays until expiresAt, briefly, so that a request still carrying the old id is told so (409)
   * instead of being handed a cookie that would undo the rotation in the browser.
   */
  endedAt?: number;
  /** The User-Agent of the request that created the session (at most 256 characters), for the device list. */
  userAgent: string | null;
}

/**
 * What a listing of a user's sessions loads of each one: what liveness and the device list need,
 * never `data` (up to ~1 MB a session) nor the key digests.
 */
export type SessionHead = Pick<StoredSession, 'user' | 'lastSeen' | 'createdAt' | 'expiresAt' | 'endedAt' | 'userAgent'>;

/** A stored session by its key, with its head only. */
export interface HeadRef {
  key: StorageKey;
  head: SessionHead;
}

/** One page of a listing of a user's sessions (SessionStore.listUserSessions). */
export interface HeadPage {
  sessions: HeadRef[];
  /** Opaque position after the last session; absent when the query is exhausted. */
  cursor?: string;
}

/** What one atomic update writes: sessions to put and sessions to delete, in one commit. */
export interface WriteSet {
  put: Array<{ key: StorageKey; session: StoredSession }>;
  delete: StorageKey[];
  /** Session events to store in the same commit (the outbox, docs/events.md); only with SESSION_EVENTS_TOPIC set. */
  outbox?: OutboxRecord;
}

/** What an update's `decide` returns: the writes to commit with the read (none: null) and the caller's result. */
export interface Decision<T> {
  writes: WriteSet | null;
  result: T;
}

/** Which sessions a batch deletion removes. */
export type SessionSelector =
  /** Sessions whose expiresAt lies before this time. */
  | { kind: 'expired'; before: number }
  /** Sessions of `user` (GUEST_USER for guests, null for every session) created at or before `createdAtOrBefore`. */
  | { kind: 'user'; user: string | null; createdAtOrBefore: number };

/** One page of storage keys of a batch deletion's query (SessionStore.findKeys). */
export interface KeyPage {
  keys: StorageKey[];
  /** With FindKeysOptions.withUsers: the stored user of each key (GUEST_USER for a guest), in the same order. */
  users?: string[];
  /** Opaque position after the last key; absent when the query is exhausted. */
  cursor?: string;
}

/** Options of SessionStore.findKeys. */
export interface FindKeysOptions {
  /** Also return each session's stored user (KeyPage.users): what session events need of a removed session. */
  withUsers?: boolean;
}

/**
 * The narrow interface the session logic talks to. Implementations: DatastoreSessionStore
 * (production), MemorySessionStore (local use and fast tests); both pass the same contract suite.
 * Implement it to keep sessions elsewhere; SessionManager and the batch-deletion engine need nothing else.
 */
export interface SessionStore {
  /** One read by key; null when absent. */
  get(key: StorageKey): Promise<StoredSession | null>;
  /**
   * Reads `key` (none when null: a brand-new session has nothing to read) and commits what
   * `decide` returns atomically with that read. On contention the read and `decide` are repeated,
   * so `decide` must be free of side effects other than its return value. `writes: null` writes
   * nothing.
   */
  update<T>(key: StorageKey | null, decide: (current: StoredSession | null) => Decision<T>): Promise<T>;
  /** One page of keys of the sessions the selector matches, in a stable order. */
  findKeys(selector: SessionSelector, limit: number, cursor?: string, options?: FindKeysOptions): Promise<KeyPage>;
  /**
   * One page of at most `limit` sessions stored for `user` whose expiresAt lies after
   * `expiresAfter` (sessions past it are dead and never read; a tombstone or a session idle too long
   * may still be among them: liveness is the caller's call), latest expiresAt first, each with its
   * head only: a fixed number of queries per page (one, or two sent together while a store
   * migrates), whatever the number of dead sessions of the user.
   */
  listUserSessions(user: string, expiresAfter: number, limit: number, cursor?: string): Promise<HeadPage>;
  /**
   * The session stored for `user` whose device handle (deviceHandle of its key) is `handle`, with
   * its head only, if its expiresAt lies after `expiresAfter`; null otherwise (another user's
   * session answers null too). A bounded number of reads whatever the number of the user's
   * sessions: one query or lookup by the handle; a store whose older records lack the handle may
   * then look through the first LIST_SCAN sessions listUserSessions returns, never more.
   */
  findUserSession(user: string, handle: string, expiresAfter: number): Promise<HeadRef | null>;
  /**
   * Ends these sessions for a request (the device routes, the session cap): deletes them in one
   * commit under the request's deadline; absent keys are ignored. At most 500 keys, 499 with an
   * outbox record, which is stored in the same commit.
   */
  endSessions(keys: StorageKey[], outbox?: OutboxRecord): Promise<void>;
  /** Deletes these sessions in one commit (with `outbox` stored in it); absent keys are ignored. At most 500 mutations in all. */
  deleteMany(keys: StorageKey[], outbox?: OutboxRecord): Promise<void>;
  /**
   * Outbox records written before `before` (ms since the epoch), oldest first, at most `limit`:
   * what a relay publishes. Required when session events are on (docs/events.md).
   */
  pendingOutbox?(before: number, limit: number): Promise<OutboxRecord[]>;
  /** Deletes these outbox records (published); absent ids are ignored. */
  deleteOutbox?(ids: string[]): Promise<void>;
}
