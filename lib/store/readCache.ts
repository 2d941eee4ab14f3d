import type { Clock } from '../core/clock';
import type { OutboxRecord } from '../core/events';
import { dataText, parseDataText } from '../core/json';
import type {
  Decision,
  FindKeysOptions,
  HeadPage,
  HeadRef,
  KeyPage,
  SessionSelector,
  SessionStore,
  StorageKey,
  StoredSession,
  WriteSet,
} from './sessionStore';

/** Bounds of a ReadCachingStore: how long, how many sessions and how many bytes it may hold. */
export interface ReadCacheOptions {
  /** How long a cached read may be served, in ms (> 0): the bound on seeing another instance's write or kill. */
  ttlMs: number;
  /** Most sessions held at once. */
  maxEntries?: number;
  /**
   * Most bytes held at once, counted as what is kept: each session's data as its JSON text (as the
   * Datastore store keeps it), its other fields and a fixed overhead. A single larger session is not cached.
   */
  maxBytes?: number;
  /** The clock entry ages are measured with. */
  clock: Clock;
}

/** A session as the cache keeps it: the data as one JSON text, parsed into a fresh object on every hit. */
interface Entry {
  head: Omit<StoredSession, 'data'>;
  text: string;
  /** When the value was read from (or committed to) the store. */
  at: number;
  bytes: number;
}

/** Fixed part of an entry's size next to its strings: the Map slot, the storage key, the entry, its head and array. */
const ENTRY_OVERHEAD = 512;

/**
 * The most a string takes in V8's heap: a header, and one byte per character when it is ASCII (a
 * one-byte string for certain), else two.
 */
function stringBytes(s: string): number {
  return 24 + (Buffer.byteLength(s, 'utf8') === s.length ? s.length : 2 * s.length);
}

/** What an entry keeps, in bytes: the data's text, the strings of the head, the overhead. */
function entryBytes(text: string, head: Omit<StoredSession, 'data'>): number {
  let bytes = ENTRY_OVERHEAD + stringBytes(text) + stringBytes(head.staticKeyDigest);
  for (const s of [head.user, head.userAgent, ...head.securityKeyDigests]) if (s !== null) bytes += stringBytes(s);
  return bytes;
}

/**
 * An opt-in per-instance read cache in front of a SessionStore (SESSION_READ_CACHE_MS > 0): a `get`
 * of a session this instance read or wrote less than `ttlMs` ago costs no round trip, while every
 * `update` still goes to the store's transaction. Why that stays correct (single-use keys, kills,
 * other instances' writes) is in docs/design/read-cache.md. createRuntime() wraps the store in it.
 *
 * @example
 * const store = new ReadCachingStore(new MemorySessionStore(), { ttlMs: 2000, clock: { now: () => Date.now() } });
 */
export class ReadCachingStore implements SessionStore {
  readonly #inner: SessionStore;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #clock: Clock;
  /** Least recently used first (Map keeps insertion order; a hit re-inserts). */
  readonly #entries = new Map<StorageKey, Entry>();
  #bytes = 0;
  /** Bumped by every change this instance makes through the cache. */
  #writes = 0;

  /**
   * A cache in front of `inner`; RangeError unless `ttlMs` > 0. Defaults: 10,000 entries, 64 MiB.
   *
   * @example
   * new ReadCachingStore(datastoreStore, { ttlMs: config.readCacheMs, maxEntries: 5000, clock });
   */
  constructor(inner: SessionStore, options: ReadCacheOptions) {
    if (!(options.ttlMs > 0)) throw new RangeError('ttlMs must be positive');
    this.#inner = inner;
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.#clock = options.clock;
  }

  /** Sessions and bytes held now (for tests and diagnostics). */
  get stats(): { entries: number; bytes: number } {
    return { entries: this.#entries.size, bytes: this.#bytes };
  }

  /**
   * From memory when this instance read or wrote the session less than `ttlMs` ago, else from the
   * store (and then cached); always an object of the caller's own, which it may change.
   *
   * @example
   * const stored = await cache.get(digest(sessionId));
   */
  async get(key: StorageKey): Promise<StoredSession | null> {
    const entry = this.#entries.get(key);
    if (entry) {
      if (this.#clock.now() - entry.at < this.#ttlMs) {
        this.#entries.delete(key);
        this.#entries.set(key, entry);
        // A fresh object on every hit: the caller may change it freely, and nothing parsed stays here.
        return { ...entry.head, data: parseDataText(entry.text), securityKeyDigests: [...entry.head.securityKeyDigests] };
      }
      this.#drop(key);
    }
    const writesBefore = this.#writes;
    const at = this.#clock.now();
    const session = await this.#inner.get(key);
    if (session && this.#writes === writesBefore) this.#put(key, session, at);
    return session;
  }

  /**
   * Always the inner store's transaction; what it read and committed then replaces the entries, and
   * on a failure (unknown outcome) the entries are dropped.
   *
   * @example
   * await cache.update(key, (current) => ({ writes: null, result: current?.user ?? null }));
   */
  async update<T>(key: StorageKey | null, decide: (current: StoredSession | null) => Decision<T>): Promise<T> {
    let read: { current: StoredSession | null; writes: WriteSet | null; at: number } | undefined;
    this.#writes++;
    try {
      const result = await this.#inner.update(key, (current) => {
        // Runs again on contention: only the last attempt's read and writes were committed. `decide`
        // leaves `current` as it is (the store contract), so it is kept as read until #learn.
        read = { current, writes: null, at: this.#clock.now() };
        const decision = decide(current);
        read.writes = decision.writes;
        return decision;
      });
      if (read) this.#learn(key, read.current, read.writes, read.at);
      return result;
    } catch (err) {
      // Unknown outcome (or the session is gone): the next read asks the store.
      if (key !== null) this.#drop(key);
      for (const p of read?.writes?.put ?? []) this.#drop(p.key);
      throw err;
    } finally {
      this.#writes++;
    }
  }

  /**
   * Passed through to the inner store (the batch engine's queries are never cached).
   *
   * @example
   * await cache.findKeys({ kind: 'user', user: 'alice', createdAtOrBefore: Date.now() }, 500);
   */
  findKeys(selector: SessionSelector, limit: number, cursor?: string, options?: FindKeysOptions): Promise<KeyPage> {
    return this.#inner.findKeys(selector, limit, cursor, options);
  }

  /**
   * Always from the store: a listing must show what is there now.
   *
   * @example
   * await cache.listUserSessions('alice', Date.now(), 500);
   */
  listUserSessions(user: string, expiresAfter: number, limit: number, cursor?: string): Promise<HeadPage> {
    return this.#inner.listUserSessions(user, expiresAfter, limit, cursor);
  }

  /**
   * Always from the store, like a listing.
   *
   * @example
   * await cache.findUserSession('alice', deviceId, Date.now());
   */
  findUserSession(user: string, handle: string, expiresAfter: number): Promise<HeadRef | null> {
    return this.#inner.findUserSession(user, handle, expiresAfter);
  }

  /**
   * The inner store's endSessions, then the entries of `keys` are dropped.
   *
   * @example
   * await cache.endSessions([target.key]);
   */
  endSessions(keys: StorageKey[], outbox?: OutboxRecord): Promise<void> {
    return this.#deleting(keys, () => this.#inner.endSessions(keys, outbox));
  }

  /**
   * The inner store's deleteMany, then the entries of `keys` are dropped.
   *
   * @example
   * await cache.deleteMany(keys);
   */
  deleteMany(keys: StorageKey[], outbox?: OutboxRecord): Promise<void> {
    return this.#deleting(keys, () => this.#inner.deleteMany(keys, outbox));
  }

  /**
   * The inner store's outbox (never cached).
   *
   * @example
   * await cache.pendingOutbox(Date.now() - 30_000, 100);
   */
  pendingOutbox(before: number, limit: number): Promise<OutboxRecord[]> {
    if (!this.#inner.pendingOutbox) return Promise.reject(new Error('the store keeps no session events'));
    return this.#inner.pendingOutbox(before, limit);
  }

  /**
   * The inner store's deleteOutbox.
   *
   * @example
   * await cache.deleteOutbox([record.id]);
   */
  deleteOutbox(ids: string[]): Promise<void> {
    if (!this.#inner.deleteOutbox) return Promise.reject(new Error('the store keeps no session events'));
    return this.#inner.deleteOutbox(ids);
  }

  async #deleting(keys: StorageKey[], run: () => Promise<void>): Promise<void> {
    this.#writes++;
    try {
      await run();
    } finally {
      for (const k of keys) this.#drop(k);
      this.#writes++;
    }
  }

  /** What a committed transaction read and wrote is what the store holds now. */
  #learn(key: StorageKey | null, current: StoredSession | null, writes: WriteSet | null, at: number): void {
    if (key !== null) {
      // What the commit puts under `key` replaces what was read: no need to keep the read first.
      if (current) {
        if (!writes?.put.some((p) => p.key === key)) this.#put(key, current, at);
      } else this.#drop(key);
    }
    if (!writes) return;
    const now = this.#clock.now();
    for (const k of writes.delete) this.#drop(k);
    for (const p of writes.put) this.#put(p.key, p.session, now);
  }

  /** Keeps `session` as text, synchronously: later changes of the caller's object do not reach the entry. */
  #put(key: StorageKey, session: StoredSession, at: number): void {
    this.#drop(key);
    const { data, ...rest } = session;
    const head = { ...rest, securityKeyDigests: [...rest.securityKeyDigests] };
    const text = dataText(data);
    const bytes = entryBytes(text, head);
    if (bytes > this.#maxBytes) return;
    this.#entries.set(key, { head, text, at, bytes });
    this.#bytes += bytes;
    for (const [oldest, entry] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(oldest);
      this.#bytes -= entry.bytes;
    }
  }

  #drop(key: StorageKey): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}
