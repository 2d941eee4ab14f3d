import { inspect } from 'node:util';
import type { Clock } from './clock';
import { type CookieSettings, clearedCookie, readCookieValues, sessionCookie } from './cookies';
import { type Device, type SessionRef, beyondCap, deviceHandle, isWellFormedHandle, storedUserAgent, toDevices } from './devices';
import { DataTooLargeError, InvalidUserError, KeyNotFoundError, SecurityKeyConflictError, SessionEndedError, TooManyKeysError } from './errors';
import { digest, digestsEqual, isWellFormedToken, newToken, type RandomSource } from './ids';
import { assertJsonValue, assertValidKey, copyData, dataSize, emptyData, type JsonValue, type SessionData } from './json';
import type { Decision, SessionHead, SessionStore, StorageKey, StoredSession, WriteSet } from '../store/sessionStore';

/** The user id stored for sessions without a user; `killSessionByUser(GUEST_USER)` kills them all. */
export const GUEST_USER = '__guest__';

/** Longest user id in UTF-8 bytes (it is an indexed Datastore string, limited to 1,500). */
export const MAX_USER_BYTES = 500;

/**
 * How long the entity of a session rotated away by login, logout or reset stays as a tombstone.
 * Requests still carrying the old id (sent before the browser saw the new cookie) get
 * session_ended and no Set-Cookie meanwhile, so they cannot undo the rotation in the browser.
 * A minute and a half covers requests in flight and retried; its expiresAt lets the cleanup and the
 * TTL policy remove it like any expired session.
 */
export const TOMBSTONE_SECONDS = 90;

/**
 * When the cookie name appears more than once (a sibling subdomain may plant one), at most this many
 * well-formed values are looked up, each costing one lookup; the first naming a live session wins.
 */
export const MAX_COOKIE_CANDIDATES = 3;

export interface SessionSettings {
  lifetimeSeconds: number;
  /** lastSeen is rewritten on a read-only request only when older than this. */
  refreshIntervalSeconds: number;
  persistentFieldsOnLogin: readonly string[];
  persistentFieldsOnLogout: readonly string[];
  /** Limit on the data as stored (keys plus JSON text, UTF-8). */
  maxDataBytes: number;
  /** One-time keys valid at once per session; the oldest is dropped beyond this. */
  maxSecurityKeys: number;
  /** Most keys the data may hold. */
  maxDataKeys: number;
  /** A session ends this long after createdAt, however busy; 0: no absolute limit. */
  absoluteLifetimeSeconds: number;
  /** Sessions one user may have; beyond it, login ends the least recently seen. 0: no limit. */
  maxSessionsPerUser: number;
  cookie: CookieSettings;
}

/**
 * A change this request made. Saving replays them onto the stored entity inside a transaction, so
 * two requests that change different keys of one session both survive. Random values are drawn
 * when the operation is recorded, so a replay is deterministic and may be repeated on contention.
 */
type Operation =
  | { type: 'set'; key: string; value: JsonValue }
  | { type: 'delete'; key: string }
  | { type: 'reset'; id: string; staticKeyDigest: string; keep: readonly string[]; user: string | null; userAgent: string | null }
  | { type: 'addKeys'; digests: string[] }
  | { type: 'consumeKey'; digest: string };

export interface SaveOutcome {
  written: boolean;
  /** A Set-Cookie header value to send, if the cookie must change. */
  setCookie: string | null;
  /** The static security key, when this save stored a new one: revealed exactly once. */
  staticSecurityKey: string | null;
}

/**
 * One request's view of a session: a map of JSON values plus the user binding and security keys.
 * It never touches the store itself; SessionManager loads and saves it. Secrets (the id, the keys)
 * are not enumerable and not shown by console.log or JSON.stringify.
 */
export class Session {
  #id: string;
  #state: StoredSession;
  readonly #operations: Operation[] = [];
  #forced = false;
  #revealedStaticKey: string | null;

  /** @internal created by SessionManager */
  constructor(
    id: string,
    state: StoredSession,
    /** The storage key the session was read under; null when it is not stored yet. */
    readonly loadedKey: StorageKey | null,
    /** The client sent a cookie that named no live session. */
    readonly staleCookie: boolean,
    revealedStaticKey: string | null,
    private readonly settings: SessionSettings,
    private readonly clock: Clock,
    private readonly random: RandomSource,
    /** The stored User-Agent of the request: a session this request starts (reset, login) keeps it. */
    private readonly userAgent: string | null = null,
  ) {
    this.#id = id;
    this.#state = state;
    this.#revealedStaticKey = revealedStaticKey;
  }

  /** True until the session has been written once. */
  get isNew(): boolean {
    return this.loadedKey === null;
  }

  get user(): string | null {
    return this.#state.user;
  }

  has(key: string): boolean {
    return Object.hasOwn(this.#state.data, key);
  }

  get<T extends JsonValue = JsonValue>(key: string): T | undefined;
  get<T extends JsonValue = JsonValue>(key: string, fallback: T): T;
  get(key: string, fallback?: JsonValue): JsonValue | undefined {
    return this.has(key) ? structuredClone(this.#state.data[key]) : fallback;
  }

  /** Like `session[key]` in the original: fails on a missing key. */
  getOrThrow<T extends JsonValue = JsonValue>(key: string): T {
    if (!this.has(key)) throw new KeyNotFoundError(key);
    return structuredClone(this.#state.data[key]) as T;
  }

  set(key: string, value: JsonValue): void {
    assertValidKey(key);
    assertJsonValue(value);
    this.#record({ type: 'set', key, value: structuredClone(value) });
  }

  /** Fails on a missing key, as the original's `del session[key]`. */
  delete(key: string): void {
    if (!this.has(key)) throw new KeyNotFoundError(key);
    this.#record({ type: 'delete', key });
  }

  /** Sets every key of `values`; all or nothing. */
  merge(values: Record<string, JsonValue>): void {
    const entries = Object.entries(values);
    for (const [key, value] of entries) {
      assertValidKey(key);
      assertJsonValue(value, key);
    }
    const ops: Operation[] = entries.map(([key, value]) => ({ type: 'set', key, value: structuredClone(value) }));
    this.#record(...ops);
  }

  entries(): Array<[string, JsonValue]> {
    return Object.entries(this.#state.data).map(([k, v]) => [k, structuredClone(v)]);
  }

  items(): Array<[string, JsonValue]> {
    return this.entries();
  }

  /** A copy of all data, as a plain object. */
  toObject(): SessionData {
    return Object.assign({}, structuredClone(this.#state.data));
  }

  markChanged(): void {
    this.#forced = true;
  }

  /** Ends this session and starts an empty one with a new id and new keys. */
  reset(): void {
    this.#startOver([], null);
  }

  /**
   * Binds `user` after a reset that keeps only the persistentFieldsOnLogin keys: a new id, so a
   * session id known before the login (fixation) is worthless after it.
   */
  login(user: string): void {
    if (typeof user !== 'string' || user.length === 0) throw new InvalidUserError('a user id must be a non-empty string');
    if (user === GUEST_USER) throw new InvalidUserError(`${GUEST_USER} is not a user id`);
    if (Buffer.byteLength(user, 'utf8') > MAX_USER_BYTES) throw new InvalidUserError(`a user id may have at most ${MAX_USER_BYTES} bytes`);
    // Datastore refuses strings that are not valid UTF-8, which a lone surrogate cannot become.
    if (!user.isWellFormed()) throw new InvalidUserError('a user id must be well-formed unicode (no lone surrogate)');
    this.#startOver(this.settings.persistentFieldsOnLogin, user);
  }

  /** Resets to a guest session that keeps only the persistentFieldsOnLogout keys. */
  logout(): void {
    this.#startOver(this.settings.persistentFieldsOnLogout, null);
  }

  /** Hands out a new one-time CSRF key; the session is persisted at save even if new. */
  getSecurityKey(): string {
    return this.getSecurityKeys(1)[0]!;
  }

  /** Several one-time keys at once, for parallel form posts; at most maxSecurityKeys. */
  getSecurityKeys(count: number): string[] {
    if (!Number.isInteger(count) || count < 1 || count > this.settings.maxSecurityKeys) {
      throw new RangeError(`count must be an integer from 1 to ${this.settings.maxSecurityKeys}`);
    }
    const keys = Array.from({ length: count }, () => newToken(this.random));
    this.#record({ type: 'addKeys', digests: keys.map(digest) });
    return keys;
  }

  /**
   * True when `key` is one of this session's one-time keys; it is then consumed and a fresh key
   * can be fetched. Compared in constant time. The consumption is committed by save (or by
   * withSession), atomically: of two requests racing with one key, only one commits.
   */
  validateSecurityKey(key: string): boolean {
    if (!isWellFormedToken(key)) return false;
    const wanted = digest(key);
    let found: string | undefined;
    for (const d of this.#state.securityKeyDigests) if (digestsEqual(d, wanted)) found = d;
    if (found === undefined) return false;
    this.#record({ type: 'consumeKey', digest: found });
    return true;
  }

  validateStaticSecurityKey(key: string): boolean {
    return isWellFormedToken(key) && digestsEqual(this.#state.staticKeyDigest, digest(key));
  }

  /** @internal */
  get operations(): readonly Operation[] {
    return this.#operations;
  }

  /** @internal */
  get forced(): boolean {
    return this.#forced;
  }

  /** @internal */
  get id(): string {
    return this.#id;
  }

  /** @internal */
  get state(): StoredSession {
    return this.#state;
  }

  /** @internal the static key to reveal if the save stores it */
  get revealedStaticKey(): string | null {
    return this.#revealedStaticKey;
  }

  toJSON(): { user: string | null; data: SessionData } {
    return { user: this.user, data: this.toObject() };
  }

  [inspect.custom](): string {
    return `Session { user: ${JSON.stringify(this.user)}, keys: ${JSON.stringify(Object.keys(this.#state.data))} }`;
  }

  #startOver(keep: readonly string[], user: string | null): void {
    const id = newToken(this.random);
    const staticKey = newToken(this.random);
    this.#record({ type: 'reset', id, staticKeyDigest: digest(staticKey), keep: [...keep], user, userAgent: this.userAgent });
    this.#id = id;
    this.#revealedStaticKey = staticKey;
  }

  /** Applies to the local view first, so a failing operation (size limit) is never recorded. */
  #record(...ops: Operation[]): void {
    const next = applyOperations(this.#state, ops, this.clock.now(), this.settings);
    this.#state = next;
    this.#operations.push(...ops);
  }
}

/**
 * The one place where operations change a stored session, used both for the request's local view
 * and for the replay onto what the store holds at save time.
 */
function applyOperations(base: StoredSession, ops: readonly Operation[], now: number, settings: SessionSettings): StoredSession {
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
  }
  return state;
}

function freshState(now: number, staticKeyDigest: string, settings: SessionSettings, user: string | null = null, data = emptyData(), userAgent: string | null = null): StoredSession {
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
 * expiresAt find a session that ends by its age too.
 */
function expiry(settings: SessionSettings, createdAt: number, now: number): number {
  const idle = now + settings.lifetimeSeconds * 1000;
  const absolute = settings.absoluteLifetimeSeconds;
  return absolute > 0 ? Math.min(idle, createdAt + absolute * 1000) : idle;
}

/** What stays of a rotated session: no data or keys, its user and creation time (so kills find it). */
function tombstone(previous: StoredSession, now: number): StoredSession {
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

/** Anything worth storing (lazy creation): a user, data, or a handed-out key. */
function holdsSomething(s: StoredSession): boolean {
  if (s.user !== null || s.securityKeyDigests.length > 0) return true;
  for (const _ in s.data) return true;
  return false;
}

/** What the manager needs to know of the request besides the cookie. */
export interface RequestInfo {
  /** The User-Agent header; stored (at most 256 characters) on a session this request starts. */
  userAgent?: string | undefined;
}

export interface WithSessionOptions extends RequestInfo {
  /**
   * Other sessions of the same user to end in the same commit as this change (the device routes):
   * found beforehand with liveSessions(). If the cookie's session no longer belongs to `user`,
   * nothing is written and SessionEndedError is thrown. Past what one commit can hold, the rest are
   * deleted in further commits right after it.
   */
  end?: { user: string; keys: readonly StorageKey[] };
}

/** Most sessions that one commit ends next to the session's own writes (Datastore: 500 mutations). */
const END_IN_COMMIT = 498;
/** Pages of heads read per query when every session of a user must be seen. */
const HEAD_PAGE = 500;
/** Stored sessions a device listing looks at (heads are small; data is never loaded). */
const LIST_SCAN = 1000;
/** Stored sessions ending or capping looks at, at most, for one user. */
const FULL_SCAN = 20_000;

export interface SessionManagerOptions {
  store: SessionStore;
  settings: SessionSettings;
  clock: Clock;
  random: RandomSource;
}

/**
 * Loads and saves sessions for requests. Round trips: a read of an existing session is one lookup;
 * withSession() changing it is one lookup (that opens the transaction) and one commit.
 */
export class SessionManager {
  readonly store: SessionStore;
  readonly settings: SessionSettings;
  readonly #clock: Clock;
  readonly #random: RandomSource;

  constructor(options: SessionManagerOptions) {
    this.store = options.store;
    this.settings = options.settings;
    this.#clock = options.clock;
    this.#random = options.random;
  }

  /** The session named by the Cookie header, or a fresh one: one lookup at most, none for a junk cookie. */
  async load(cookieHeader: string | undefined, request: RequestInfo = {}): Promise<Session> {
    const sent = readCookieValues(cookieHeader, this.settings.cookie.name);
    const { id, stored } = await this.#pick(sent);
    if (stored !== null && this.#isTombstone(stored)) throw new SessionEndedError();
    return this.#open(id, stored, sent, request);
  }

  /**
   * Writes back what this request changed, merged into what is stored now (inside a transaction),
   * and says which cookie and static key to send. Writes nothing when nothing needs writing.
   */
  async save(session: Session): Promise<SaveOutcome> {
    if (!this.#needsWrite(session)) return this.#outcome(session, false, false);
    const now = this.#clock.now();
    const kept = await this.store.update(session.loadedKey, (current) => {
      // Ended (killed, or rotated away: a tombstone) while this request ran: not resurrected.
      if (session.loadedKey !== null && (current === null || current.endedAt !== undefined)) throw new SessionEndedError();
      const base = current ?? session.state;
      const ops = current === null ? [] : session.operations;
      const { writes, keepsSession } = this.#writeSet(session, applyOperations(base, ops, now, this.settings), now, current);
      return { writes, result: keepsSession };
    });
    await this.#afterLogin(session);
    return this.#outcome(session, true, kept);
  }

  /**
   * Runs `change` on the session named by the cookie and commits the result atomically with the
   * read (one lookup, one commit). On contention it runs again on fresh data, so `change` must
   * only act on the session. A validated one-time key is thus consumed by exactly one request.
   */
  async withSession<T>(
    cookieHeader: string | undefined,
    change: (session: Session) => T,
    options: WithSessionOptions = {},
  ): Promise<{ result: T; session: Session; outcome: SaveOutcome }> {
    const sent = readCookieValues(cookieHeader, this.settings.cookie.name);
    const candidates = wellFormed(sent);
    // One value (the common case): looked up inside the transaction only. Several: the live one is
    // found first, then read again in the transaction.
    const id = candidates.length > 1 ? (await this.#pick(sent)).id : (candidates[0] ?? null);
    const end = options.end;
    let last: { session: Session; written: boolean; kept: boolean; endLater: StorageKey[] } | undefined;
    const result = await this.store.update(id === null ? null : digest(id), (current): Decision<T> => {
      if (current !== null && this.#isTombstone(current)) throw new SessionEndedError();
      const session = this.#open(id, current, sent, options);
      if (end && session.user !== end.user) throw new SessionEndedError();
      const value = change(session);
      const written = this.#needsWrite(session);
      const now = this.#clock.now();
      const set = written ? this.#writeSet(session, session.state, now, current) : null;
      let writes = set?.writes ?? null;
      let endLater: StorageKey[] = [];
      if (end) {
        // The other sessions end in this commit, so a refused or failed change ends none of them.
        const own = new Set([session.loadedKey, digest(session.id)]);
        const others = end.keys.filter((k) => !own.has(k));
        endLater = others.slice(END_IN_COMMIT);
        writes = { put: writes?.put ?? [], delete: [...(writes?.delete ?? []), ...others.slice(0, END_IN_COMMIT)] };
      }
      last = { session, written, kept: set?.keepsSession ?? false, endLater };
      return { writes, result: value };
    });
    const { session, written, kept, endLater } = last!;
    await this.#deleteAll(endLater);
    await this.#afterLogin(session);
    return { result, session, outcome: this.#outcome(session, written, kept) };
  }

  /**
   * The live sessions of `user` (heads only, never their data), as the store lists them: pages of
   * one query each, until `maxScan` stored sessions were looked at.
   */
  async liveSessions(user: string, maxScan = FULL_SCAN): Promise<SessionRef[]> {
    const live: SessionRef[] = [];
    let cursor: string | undefined;
    for (let seen = 0; seen < maxScan; ) {
      const page = await this.store.listUserSessions(user, Math.min(HEAD_PAGE, maxScan - seen), cursor);
      seen += page.sessions.length;
      for (const s of page.sessions) if (this.isAlive(s.head)) live.push(s);
      if (!page.cursor || page.sessions.length === 0) break;
      cursor = page.cursor;
    }
    return live;
  }

  /**
   * Where `user` is signed in: the live sessions, most recently seen first, at most 100 (of the
   * first 1,000 stored; data is never loaded). `current` marks the session stored under
   * `currentKey`. One query for a user with up to 500 stored sessions.
   */
  async listSessions(user: string, currentKey: StorageKey | null = null): Promise<Device[]> {
    return toDevices(await this.liveSessions(user, LIST_SCAN), currentKey);
  }

  /**
   * Ends the live session of `user` that `handle` names; false when there is none (another user's
   * handle looks exactly like an unknown one). One query and one commit. A storage key's user never
   * changes (login and logout move a session to a new key), so the delete needs no transaction.
   */
  async endSession(user: string, handle: string): Promise<boolean> {
    if (!isWellFormedHandle(handle)) return false;
    const target = (await this.liveSessions(user)).find((s) => deviceHandle(s.key) === handle);
    if (!target) return false;
    await this.store.endSessions([target.key]);
    return true;
  }

  /**
   * Ends every live session of the session's user except this one ("sign out everywhere else"):
   * one query and one commit per 500 others. Nothing for a guest. Returns how many were ended.
   */
  async endOtherSessions(session: Session): Promise<number> {
    if (session.user === null) return 0;
    const own = digest(session.id);
    const others = (await this.liveSessions(session.user)).map((s) => s.key).filter((k) => k !== own && k !== session.loadedKey);
    await this.#deleteAll(others);
    return others.length;
  }

  /**
   * Whether `stored` can still be used at `now`: not a tombstone, within the idle lifetime and the
   * absolute lifetime (checked on every read).
   */
  isAlive(stored: SessionHead, now = this.#clock.now()): boolean {
    if (stored.endedAt !== undefined) return false;
    const absolute = this.settings.absoluteLifetimeSeconds;
    if (absolute > 0 && now >= stored.createdAt + absolute * 1000) return false;
    return now < stored.lastSeen + this.settings.lifetimeSeconds * 1000 && now < stored.expiresAt;
  }

  #isTombstone(stored: StoredSession): boolean {
    return stored.endedAt !== undefined && this.#clock.now() < stored.expiresAt;
  }

  /**
   * The cookie value that names a live session, looking up at most MAX_COOKIE_CANDIDATES well-formed
   * values in header order; else a recent tombstone among them (so the caller answers
   * session_ended), else nothing.
   */
  async #pick(sent: string[]): Promise<{ id: string | null; stored: StoredSession | null }> {
    let ended: { id: string; stored: StoredSession } | null = null;
    for (const id of wellFormed(sent)) {
      const stored = await this.store.get(digest(id));
      if (stored === null) continue;
      if (this.isAlive(stored)) return { id, stored };
      if (ended === null && this.#isTombstone(stored)) ended = { id, stored };
    }
    return ended ?? { id: null, stored: null };
  }

  #open(id: string | null, stored: StoredSession | null, sent: string[], request: RequestInfo = {}): Session {
    const userAgent = storedUserAgent(request.userAgent);
    if (id !== null && stored !== null && this.isAlive(stored)) {
      return new Session(id, stored, digest(id), false, null, this.settings, this.#clock, this.#random, userAgent);
    }
    // A clearing cookie only for a single value: with the name twice, Max-Age=0 could delete the
    // browser's real cookie while a planted one stays.
    const staleCookie = sent.length === 1;
    const staticKey = newToken(this.#random);
    const state = freshState(this.#clock.now(), digest(staticKey), this.settings, null, emptyData(), userAgent);
    return new Session(newToken(this.#random), state, null, staleCookie, staticKey, this.settings, this.#clock, this.#random, userAgent);
  }

  /**
   * SESSION_MAX_SESSIONS_PER_USER: after a login was written, the user's live sessions ranked below
   * the cap (byRecency: least recently seen first) are ended. One query, plus one commit when
   * something is over. See byRecency for why concurrent logins agree on the survivors.
   */
  async #afterLogin(session: Session): Promise<void> {
    const max = this.settings.maxSessionsPerUser;
    if (max <= 0 || session.user === null) return;
    if (!session.operations.some((op) => op.type === 'reset' && op.user !== null)) return;
    await this.#deleteAll(beyondCap(await this.liveSessions(session.user), max));
  }

  async #deleteAll(keys: readonly StorageKey[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 500) await this.store.endSessions(keys.slice(i, i + 500));
  }

  #needsWrite(session: Session): boolean {
    const s = session.state;
    if (session.isNew) {
      return session.forced || s.user !== null || Object.keys(s.data).length > 0 || s.securityKeyDigests.length > 0;
    }
    if (session.forced || session.operations.length > 0) return true;
    return this.#clock.now() - s.lastSeen >= this.settings.refreshIntervalSeconds * 1000;
  }

  /**
   * The session under its (possibly new) key and, after a rotation, a tombstone in place of the old
   * one, in one commit. A rotation that leaves nothing worth keeping (a logout keeping no fields)
   * stores only the tombstone: lazy creation, as for any new session.
   */
  #writeSet(session: Session, state: StoredSession, now: number, previous: StoredSession | null): { writes: WriteSet; keepsSession: boolean } {
    const key = digest(session.id);
    const old = session.loadedKey;
    const rotated = old !== null && old !== key;
    const keepsSession = !rotated || session.forced || holdsSomething(state);
    const writes: WriteSet = { put: [], delete: [] };
    if (keepsSession) writes.put.push({ key, session: { ...state, lastSeen: now, expiresAt: expiry(this.settings, state.createdAt, now) } });
    if (rotated && previous !== null) writes.put.push({ key: old, session: tombstone(previous, now) });
    else if (rotated) writes.delete.push(old);
    return { writes, keepsSession };
  }

  #outcome(session: Session, written: boolean, keptSession: boolean): SaveOutcome {
    const cookie = this.settings.cookie;
    const idChanged = session.loadedKey !== digest(session.id);
    let setCookie: string | null = null;
    if (keptSession && (idChanged || cookie.persistent)) {
      // A persistent cookie lives no longer than its session can: near the absolute limit that is
      // less than the idle lifetime, and a browser would otherwise keep sending a dead id.
      const now = this.#clock.now();
      const seconds = Math.ceil((expiry(this.settings, session.state.createdAt, now) - now) / 1000);
      setCookie = sessionCookie(cookie, session.id, Math.max(1, seconds));
    } else if (!keptSession && (session.staleCookie || (idChanged && !session.isNew))) {
      setCookie = clearedCookie(cookie);
    }
    return {
      written,
      setCookie,
      staticSecurityKey: keptSession && idChanged ? session.revealedStaticKey : null,
    };
  }
}

/** The distinct well-formed values, at most MAX_COOKIE_CANDIDATES: junk costs no lookup. */
function wellFormed(sent: string[]): string[] {
  const out: string[] = [];
  for (const v of sent) {
    if (isWellFormedToken(v) && !out.includes(v)) out.push(v);
    if (out.length === MAX_COOKIE_CANDIDATES) break;
  }
  return out;
}
