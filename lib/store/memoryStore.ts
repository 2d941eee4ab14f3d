import { deviceHandle } from '../core/devices';
import type { OutboxRecord } from '../core/events';
import { GUEST_USER, MAX_COMMIT_MUTATIONS } from '../core/limits';
import type {
  Decision,
  FindKeysOptions,
  HeadPage,
  HeadRef,
  KeyPage,
  SessionHead,
  SessionSelector,
  SessionStore,
  StorageKey,
  StoredSession,
} from './sessionStore';

function clone(s: StoredSession): StoredSession {
  return structuredClone(s);
}

function headOf(s: StoredSession): SessionHead {
  const head: SessionHead = { user: s.user, lastSeen: s.lastSeen, createdAt: s.createdAt, expiresAt: s.expiresAt, userAgent: s.userAgent };
  if (s.endedAt !== undefined) head.endedAt = s.endedAt;
  return head;
}

/** Latest expiresAt first, then by key: the listing's order, and its cursor's. */
function listingOrder(a: { expiresAt: number; key: StorageKey }, b: { expiresAt: number; key: StorageKey }): number {
  return b.expiresAt - a.expiresAt || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

function matches(s: StoredSession, selector: SessionSelector): boolean {
  if (selector.kind === 'expired') return s.expiresAt < selector.before;
  if (s.createdAt > selector.createdAtOrBefore) return false;
  if (selector.user === null) return true;
  return (s.user ?? GUEST_USER) === selector.user;
}

/**
 * Sessions in this process's memory, for `npm start` and fast tests only: nothing survives a
 * restart and nothing is shared between processes. `update` is atomic because `decide` is
 * synchronous and JavaScript runs it to completion. It passes the same contract suite as the
 * Datastore store, so code tested on it behaves alike in production. createStore() returns one
 * for SESSION_STORE=memory.
 *
 * @example
 * const store = new MemorySessionStore();
 * const { sessions } = createRuntime(loadConfig({ SESSION_STORE: 'memory' }), { store });
 * store.size; // sessions stored so far
 */
export class MemorySessionStore implements SessionStore {
  readonly #sessions = new Map<StorageKey, StoredSession>();
  /** The storage key of each device handle (deviceHandle), as the Datastore store indexes it. */
  readonly #handles = new Map<string, StorageKey>();
  /** Session events not yet published (docs/events.md), by record id. */
  readonly #outbox = new Map<string, OutboxRecord>();

  /**
   * A copy of the session stored under `key`, or null.
   *
   * @example
   * const stored = await store.get(digest(sessionId));
   */
  async get(key: StorageKey): Promise<StoredSession | null> {
    const s = this.#sessions.get(key);
    return s ? clone(s) : null;
  }

  /**
   * Runs `decide` on a copy of what is stored and applies its writes at once (atomic: see above). A
   * null key must not put a session that exists already (insert-only, as on Datastore).
   *
   * @example
   * await store.update(null, () => ({ writes: { put: [{ key, session: state }], delete: [] }, result: undefined }));
   */
  async update<T>(key: StorageKey | null, decide: (current: StoredSession | null) => Decision<T>): Promise<T> {
    const current = key === null ? null : (this.#sessions.get(key) ?? null);
    const { writes, result } = decide(current ? clone(current) : null);
    if (writes) {
      if (key === null && writes.put.some((p) => this.#sessions.has(p.key))) throw new Error('session key already exists');
      if (writes.outbox) this.#outbox.set(writes.outbox.id, structuredClone(writes.outbox));
      for (const k of writes.delete) this.#remove(k);
      for (const p of writes.put) {
        this.#sessions.set(p.key, clone(p.session));
        this.#handles.set(deviceHandle(p.key), p.key);
      }
    }
    return result;
  }

  /**
   * One page of the keys `selector` matches, ordered by key.
   *
   * @example
   * const { keys } = await store.findKeys({ kind: 'expired', before: Date.now() }, 100);
   */
  async findKeys(selector: SessionSelector, limit: number, cursor?: string, options: FindKeysOptions = {}): Promise<KeyPage> {
    // Ordered by key so that a cursor (the last key returned) is stable under deletions.
    const keys: StorageKey[] = [];
    const users: string[] = [];
    const page = (more: boolean): KeyPage => {
      const found: KeyPage = options.withUsers ? { keys, users } : { keys };
      if (more) found.cursor = keys[keys.length - 1]!;
      return found;
    };
    for (const k of [...this.#sessions.keys()].sort()) {
      if (cursor !== undefined && k <= cursor) continue;
      const s = this.#sessions.get(k)!;
      if (matches(s, selector)) {
        keys.push(k);
        users.push(s.user ?? GUEST_USER);
      }
      if (keys.length === limit) return page(true);
    }
    return page(false);
  }

  /**
   * One page of `user`'s sessions expiring after `expiresAfter`, heads only, latest expiresAt first
   * (then by key).
   *
   * @example
   * const { sessions } = await store.listUserSessions('alice', Date.now(), 100);
   */
  async listUserSessions(user: string, expiresAfter: number, limit: number, cursor?: string): Promise<HeadPage> {
    const after = cursor === undefined ? undefined : (JSON.parse(cursor) as { expiresAt: number; key: StorageKey });
    const mine: Array<{ key: StorageKey; expiresAt: number; session: StoredSession }> = [];
    for (const [key, session] of this.#sessions) {
      if ((session.user ?? GUEST_USER) !== user || session.expiresAt <= expiresAfter) continue;
      if (after !== undefined && listingOrder(after, { key, expiresAt: session.expiresAt }) >= 0) continue;
      mine.push({ key, expiresAt: session.expiresAt, session });
    }
    const page = mine.sort(listingOrder).slice(0, limit);
    const sessions = page.map((s) => ({ key: s.key, head: headOf(s.session) }));
    const last = page[page.length - 1];
    return page.length === limit && last
      ? { sessions, cursor: JSON.stringify({ expiresAt: last.expiresAt, key: last.key }) }
      : { sessions };
  }

  /**
   * The session of `user` that `handle` names, expiring after `expiresAfter`, head only; or null.
   *
   * @example
   * const found = await store.findUserSession('alice', deviceId, Date.now());
   */
  async findUserSession(user: string, handle: string, expiresAfter: number): Promise<HeadRef | null> {
    const key = this.#handles.get(handle);
    const s = key === undefined ? undefined : this.#sessions.get(key);
    if (key === undefined || s === undefined || (s.user ?? GUEST_USER) !== user || s.expiresAt <= expiresAfter) return null;
    return { key, head: headOf(s) };
  }

  /**
   * The same as deleteMany here (there is no request deadline to honour).
   *
   * @example
   * await store.endSessions([key]);
   */
  endSessions(keys: StorageKey[], outbox?: OutboxRecord): Promise<void> {
    return this.deleteMany(keys, outbox);
  }

  /**
   * Deletes these sessions; absent keys are ignored. At most 500 keys, like a Datastore commit.
   *
   * @example
   * await store.deleteMany(keys);
   */
  async deleteMany(keys: StorageKey[], outbox?: OutboxRecord): Promise<void> {
    if (keys.length > MAX_COMMIT_MUTATIONS) throw new RangeError(`at most ${MAX_COMMIT_MUTATIONS} keys per commit`);
    if (outbox && keys.length + 1 > MAX_COMMIT_MUTATIONS) throw new RangeError(`at most ${MAX_COMMIT_MUTATIONS} mutations per commit`);
    for (const k of keys) this.#remove(k);
    if (outbox) this.#outbox.set(outbox.id, structuredClone(outbox));
  }

  /**
   * Outbox records written before `before`, oldest first (then by id), at most `limit`.
   *
   * @example
   * const pending = await store.pendingOutbox(Date.now() - 30_000, 100);
   */
  async pendingOutbox(before: number, limit: number): Promise<OutboxRecord[]> {
    return [...this.#outbox.values()]
      .filter((r) => r.createdAt < before)
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, limit)
      .map((r) => structuredClone(r));
  }

  /**
   * Deletes these outbox records; absent ids are ignored.
   *
   * @example
   * await store.deleteOutbox([record.id]);
   */
  async deleteOutbox(ids: string[]): Promise<void> {
    for (const id of ids) this.#outbox.delete(id);
  }

  #remove(key: StorageKey): void {
    if (this.#sessions.delete(key)) this.#handles.delete(deviceHandle(key));
  }

  /** Number of stored sessions (for local diagnostics). */
  get size(): number {
    return this.#sessions.size;
  }
}
