import type { Clock } from './clock';
import { clearedCookie, readCookieValues, sessionCookie } from './cookies';
import { type Device, type SessionRef, beyondCap, isWellFormedHandle, storedUserAgent, toDevices } from './devices';
import { SessionEndedError } from './errors';
import { type EndReason, type EventDraft, type EventSink, MAX_OUTBOX_EVENTS, type OutboxRecord } from './events';
import { digest, isWellFormedToken, newToken, type RandomSource } from './ids';
import { emptyData } from './json';
import { FULL_SCAN, HEAD_PAGE, LIST_SCAN, MAX_COMMIT_MUTATIONS, MAX_COOKIE_CANDIDATES } from './limits';
import { applyOperations, expiry, freshState, holdsSomething, tombstone } from './operations';
import { type SaveOutcome, Session, type SessionInit } from './session';
import { changeEvents, outboxRecord, removalEvents } from './sessionEvents';
import type { SessionSettings } from './settings';
import type { Decision, SessionHead, SessionStore, StorageKey, StoredSession, WriteSet } from '../store/sessionStore';

/** What the manager needs to know of the request besides the cookie. */
export interface RequestInfo {
  /** The User-Agent header; stored (at most 256 characters) on a session this request starts. */
  userAgent?: string | undefined;
}

/** Options of SessionManager.withSession(): the request's details and other sessions to end with the change. */
export interface WithSessionOptions extends RequestInfo {
  /**
   * Other sessions of the same user to end in the same commit as this change (the device routes):
   * found beforehand with liveSessions() or findLiveSession(). If the cookie's session no longer
   * belongs to `user`, nothing is written and SessionEndedError is thrown. Past what one commit can
   * hold, the rest are deleted in further commits right after it.
   */
  end?: { user: string; keys: readonly StorageKey[]; reason?: EndReason };
}

/** Options of SessionManager.endSession(). */
export interface EndSessionOptions {
  /** Why, as session events report it (docs/events.md); default `device`. */
  reason?: EndReason;
}

/**
 * Most sessions that one commit ends next to the session's own writes (two: the session and a
 * tombstone), and with session events on, the commit's outbox record.
 */
const END_IN_COMMIT = MAX_COMMIT_MUTATIONS - 2;
const END_IN_COMMIT_WITH_EVENTS = MAX_COMMIT_MUTATIONS - 3;

/** What a SessionManager is built from; createRuntime() assembles it from the configuration. */
export interface SessionManagerOptions {
  store: SessionStore;
  settings: SessionSettings;
  clock: Clock;
  random: RandomSource;
  /**
   * Session events (SESSION_EVENTS_TOPIC, docs/events.md): every change records its events in its
   * own commit and hands them to this sink after it. Absent: no event is recorded.
   */
  events?: EventSink;
}

/**
 * Loads and saves sessions for requests. Round trips: a read of an existing session is one lookup;
 * withSession() changing it is one lookup (that opens the transaction) and one commit.
 * One instance serves every request of a process; createRuntime() builds it from the
 * configuration, or construct it yourself with any SessionStore (tests: MemorySessionStore).
 *
 * @example
 * const sessions = new SessionManager({
 *   store: new MemorySessionStore(),
 *   settings: loadConfig({ SESSION_STORE: 'memory' }).session,
 *   clock: { now: () => Date.now() },
 *   random: { bytes: (n) => randomBytes(n) }, // node:crypto
 * });
 * const session = await sessions.load(req.headers.cookie);
 */
export class SessionManager {
  /** The store sessions are loaded from and saved to (the jobs and device routes use it directly). */
  readonly store: SessionStore;
  /** Lifetimes, limits and cookie of the sessions this manager hands out. */
  readonly settings: SessionSettings;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #events: EventSink | undefined;

  /**
   * A manager on `options.store` with these settings; `clock` and `random` are injected so that
   * tests can drive expiry and ids.
   *
   * @example
   * const { sessions } = createRuntime(loadConfig()); // the usual way: the store the environment names
   */
  constructor(options: SessionManagerOptions) {
    this.store = options.store;
    this.settings = options.settings;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#events = options.events;
  }

  /**
   * The session named by the Cookie header, or a fresh one: one lookup at most, none for a junk cookie.
   * For reads, or for changes that need not be atomic with the read (then save() merges them);
   * throws SessionEndedError for a cookie of a session rotated away in the last moments, and
   * StoreUnavailableError when the store fails. `request.userAgent` is kept on a session it starts.
   *
   * @example
   * const session = await sessions.load(req.headers.cookie, { userAgent: req.headers['user-agent'] });
   * const language = session.get<string>('language', 'en');
   */
  async load(cookieHeader: string | undefined, request: RequestInfo = {}): Promise<Session> {
    const sent = readCookieValues(cookieHeader, this.settings.cookie.name);
    const { id, stored } = await this.#pick(sent);
    if (stored !== null && this.#isTombstone(stored)) throw new SessionEndedError();
    return this.#open(id, stored, sent, request);
  }

  /**
   * Writes back what this request changed, merged into what is stored now (inside a transaction),
   * and says which cookie and static key to send. Writes nothing when nothing needs writing (only a
   * lastSeen older than the refresh interval makes a read write). Throws SessionEndedError when the
   * session was ended meanwhile, SecurityKeyConflictError when a consumed key was taken by another
   * request, StoreUnavailableError when the store fails.
   *
   * @example
   * const session = await sessions.load(req.headers.cookie);
   * session.set('visits', session.get<number>('visits', 0) + 1);
   * const { setCookie } = await sessions.save(session);
   * if (setCookie) res.appendHeader('Set-Cookie', setCookie);
   */
  async save(session: Session): Promise<SaveOutcome> {
    if (!this.#needsWrite(session)) return this.#outcome(session, false, false);
    const now = this.#clock.now();
    let record: OutboxRecord | null = null;
    const kept = await this.store.update(session.loadedKey, (current) => {
      // Ended (killed, or rotated away: a tombstone) while this request ran: not resurrected.
      if (session.loadedKey !== null && (current === null || current.endedAt !== undefined)) throw new SessionEndedError();
      const base = current ?? session.state;
      const ops = current === null ? [] : session.operations;
      const { writes, keepsSession } = this.#writeSet(session, applyOperations(base, ops, now, this.settings), now, current);
      record = this.#record(this.#changeDrafts(session, current, keepsSession), writes, now);
      return { writes, result: keepsSession };
    });
    await this.#published(record);
    await this.#afterLogin(session);
    return this.#outcome(session, true, kept);
  }

  /**
   * Runs `change` on the session named by the cookie and commits the result atomically with the
   * read (one lookup, one commit). On contention it runs again on fresh data, so `change` must
   * only act on the session. A validated one-time key is thus consumed by exactly one request.
   * Use it for every change that must be atomic with its read (CSRF keys, counters, login); an error
   * thrown by `change` writes nothing. Resolves with `change`'s result, the session and the outcome
   * whose setCookie and staticSecurityKey the response must carry.
   *
   * @example
   * const { result, outcome } = await sessions.withSession(req.headers.cookie, (session) => {
   *   if (!session.validateSecurityKey(sentKey)) return false;
   *   session.set('email', newEmail);
   *   return true;
   * });
   * if (outcome.setCookie) res.appendHeader('Set-Cookie', outcome.setCookie);
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
    let last: { session: Session; written: boolean; kept: boolean; endLater: StorageKey[]; record: OutboxRecord | null } | undefined;
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
      const drafts = set ? this.#changeDrafts(session, current, set.keepsSession) : [];
      if (end) {
        // The other sessions end in this commit, so a refused or failed change ends none of them.
        const own = new Set([session.loadedKey, digest(session.id)]);
        const others = end.keys.filter((k) => !own.has(k));
        const inCommit = this.#events ? END_IN_COMMIT_WITH_EVENTS : END_IN_COMMIT;
        endLater = others.slice(inCommit);
        writes = { put: writes?.put ?? [], delete: [...(writes?.delete ?? []), ...others.slice(0, inCommit)] };
        if (this.#events) drafts.push(...this.#endDrafts(others.slice(0, inCommit), end.user, end.reason ?? 'device'));
      }
      const record = this.#record(drafts, writes, now);
      last = { session, written, kept: set?.keepsSession ?? false, endLater, record };
      return { writes, result: value };
    });
    const { session, written, kept, endLater, record } = last!;
    await this.#published(record);
    await this.#deleteAll(endLater, end && { user: end.user, reason: end.reason ?? 'device' });
    await this.#afterLogin(session);
    return { result, session, outcome: this.#outcome(session, written, kept) };
  }

  /**
   * The live sessions of `user` (heads only, never their data), as the store lists them: pages of
   * one query each, latest expiry first, until `maxScan` sessions were looked at. Sessions past
   * their expiresAt are not even read, so the cost follows the user's live sessions, not what
   * piled up since the last cleanup. The storage keys it returns are what WithSessionOptions.end
   * and the store's endSessions() take.
   *
   * @example
   * const live = await sessions.liveSessions('alice');
   * console.log(`${live.length} sessions`, live.map((s) => deviceHandle(s.key)));
   */
  async liveSessions(user: string, maxScan = FULL_SCAN): Promise<SessionRef[]> {
    const live: SessionRef[] = [];
    const now = this.#clock.now();
    let cursor: string | undefined;
    for (let seen = 0; seen < maxScan;) {
      const page = await this.store.listUserSessions(user, now, Math.min(HEAD_PAGE, maxScan - seen), cursor);
      seen += page.sessions.length;
      for (const s of page.sessions) if (this.isAlive(s.head, now)) live.push(s);
      if (!page.cursor || page.sessions.length === 0) break;
      cursor = page.cursor;
    }
    return live;
  }

  /**
   * The live session of `user` that the device handle `handle` names, or null (another user's
   * handle, a dead session's and a made-up one alike): one query on the stored handle, whatever
   * the number of the user's sessions (the store's findUserSession; for a session stored before
   * handles were, at most the listing's 1,000 live sessions more). Nothing for a malformed handle.
   *
   * @example
   * const target = await sessions.findLiveSession('alice', deviceId); // { key, head } or null
   */
  async findLiveSession(user: string, handle: string): Promise<SessionRef | null> {
    if (!isWellFormedHandle(handle)) return null;
    const now = this.#clock.now();
    const found = await this.store.findUserSession(user, handle, now);
    return found !== null && this.isAlive(found.head, now) ? found : null;
  }

  /**
   * Where `user` is signed in: the live sessions, most recently seen first, at most 100 (of the
   * 1,000 that expire last; data is never loaded). `current` marks the session stored under
   * `currentKey`. One query for a user with up to 500 live sessions. What a "where am I signed in"
   * page shows.
   *
   * @example
   * const devices = await sessions.listSessions('alice', session.loadedKey);
   * // [{ id: 'WRfd3EiKQEJ8aUUGcBn6_Q', current: true, createdAt: 1767268800000, lastSeen: 1767272400000, userAgent: 'Mozilla/5.0 …' }]
   */
  async listSessions(user: string, currentKey: StorageKey | null = null): Promise<Device[]> {
    return toDevices(await this.liveSessions(user, LIST_SCAN), currentKey);
  }

  /**
   * Ends the live session of `user` that `handle` names; false when there is none (another user's
   * handle looks exactly like an unknown one). One query (findLiveSession) and one commit. A
   * storage key's user never changes (login and logout move a session to a new key), so the delete
   * needs no transaction.
   *
   * @example
   * if (!(await sessions.endSession('alice', deviceId))) res.writeHead(404).end();
   */
  async endSession(user: string, handle: string, options: EndSessionOptions = {}): Promise<boolean> {
    const target = await this.findLiveSession(user, handle);
    if (!target) return false;
    await this.#deleteAll([target.key], { user, reason: options.reason ?? 'device' });
    return true;
  }

  /**
   * The storage keys of the live sessions of the session's user other than this one (the device
   * routes' "sign out everywhere else" ends them in the commit of its own change). None for a guest.
   *
   * @example
   * const keys = await sessions.otherSessionKeys(session);
   * await sessions.withSession(cookie, () => undefined, { end: { user: session.user!, keys } });
   */
  async otherSessionKeys(session: Session): Promise<StorageKey[]> {
    if (session.user === null) return [];
    const own = digest(session.id);
    return (await this.liveSessions(session.user)).map((s) => s.key).filter((k) => k !== own && k !== session.loadedKey);
  }

  /**
   * Ends every live session of the session's user except this one ("sign out everywhere else"):
   * one query per 500 live sessions and one commit per 500 others. Nothing for a guest. Returns how
   * many were ended.
   *
   * @example
   * const session = await sessions.load(req.headers.cookie);
   * const ended = await sessions.endOtherSessions(session); // e.g. 3
   */
  async endOtherSessions(session: Session): Promise<number> {
    const others = await this.otherSessionKeys(session);
    await this.#deleteAll(others, session.user === null ? undefined : { user: session.user, reason: 'logout_others' });
    return others.length;
  }

  /**
   * Whether `stored` can still be used at `now`: not a tombstone, within the idle lifetime and the
   * absolute lifetime (checked on every read). `now` defaults to the manager's clock.
   *
   * @example
   * const page = await store.listUserSessions('alice', 100);
   * const live = page.sessions.filter((s) => sessions.isAlive(s.head));
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
      return new Session({
        id,
        state: stored,
        loadedKey: digest(id),
        staleCookie: false,
        revealedStaticKey: null,
        ...this.#sessionParts(userAgent),
      });
    }
    // A clearing cookie only for a single value: with the name twice, Max-Age=0 could delete the
    // browser's real cookie while a planted one stays.
    const staleCookie = sent.length === 1;
    const staticKey = newToken(this.#random);
    const state = freshState(this.#clock.now(), digest(staticKey), this.settings, null, emptyData(), userAgent);
    return new Session({
      id: newToken(this.#random),
      state,
      loadedKey: null,
      staleCookie,
      revealedStaticKey: staticKey,
      ...this.#sessionParts(userAgent),
    });
  }

  #sessionParts(userAgent: string | null): Pick<SessionInit, 'settings' | 'clock' | 'random' | 'userAgent'> {
    return { settings: this.settings, clock: this.#clock, random: this.#random, userAgent };
  }

  /**
   * SESSION_MAX_SESSIONS_PER_USER: after a login was written, the user's live sessions ranked below
   * the cap (byCapRank: least recently used first, a sign-in counting as use for a minute) are
   * ended. One query (live sessions only), plus one commit when something is over. byCapRank says
   * why the login's own session survives and why concurrent logins agree on the survivors.
   */
  async #afterLogin(session: Session): Promise<void> {
    const max = this.settings.maxSessionsPerUser;
    if (max <= 0 || session.user === null) return;
    if (!session.operations.some((op) => op.type === 'reset' && op.user !== null)) return;
    await this.#deleteAll(beyondCap(await this.liveSessions(session.user), max), { user: session.user, reason: 'cap' });
  }

  /** Ends these sessions of `ended.user`, one commit per 500 (499 and an outbox record with session events on). */
  async #deleteAll(keys: readonly StorageKey[], ended?: { user: string; reason: EndReason }): Promise<void> {
    if (!this.#events || !ended) {
      for (let i = 0; i < keys.length; i += MAX_COMMIT_MUTATIONS) await this.store.endSessions(keys.slice(i, i + MAX_COMMIT_MUTATIONS));
      return;
    }
    for (let i = 0; i < keys.length; i += MAX_OUTBOX_EVENTS) {
      const chunk = keys.slice(i, i + MAX_OUTBOX_EVENTS);
      const record = outboxRecord(this.#endDrafts(chunk, ended.user, ended.reason), this.#random, this.#clock.now());
      await this.store.endSessions(chunk, record ?? undefined);
      await this.#published(record);
    }
  }

  /** The events of a change of `session` committed over `current` (none with events off). */
  #changeDrafts(session: Session, current: StoredSession | null, stored: boolean): EventDraft[] {
    if (!this.#events) return [];
    const restarts = session.operations.flatMap((op) => (op.type === 'reset' ? [op.cause ?? (op.user === null ? 'reset' : 'login')] : []));
    return changeEvents({
      oldKey: session.loadedKey,
      oldUser: current?.user ?? null,
      newKey: digest(session.id),
      newUser: session.state.user,
      stored,
      restarts,
    });
  }

  #endDrafts(keys: readonly StorageKey[], user: string, reason: EndReason): EventDraft[] {
    return removalEvents(
      keys.map((key) => ({ key, user })),
      'ended',
      reason,
    );
  }

  /** The outbox record of `drafts`, added to `writes` (nothing with events off, no drafts or no writes). */
  #record(drafts: EventDraft[], writes: WriteSet | null, now: number): OutboxRecord | null {
    if (!this.#events || writes === null || drafts.length === 0) return null;
    const record = outboxRecord(drafts, this.#random, now);
    if (record) writes.outbox = record;
    return record;
  }

  async #published(record: OutboxRecord | null): Promise<void> {
    if (record && this.#events) await this.#events.afterCommit(record);
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
  #writeSet(
    session: Session,
    state: StoredSession,
    now: number,
    previous: StoredSession | null,
  ): { writes: WriteSet; keepsSession: boolean } {
    const key = digest(session.id);
    const old = session.loadedKey;
    const rotated = old !== null && old !== key;
    const keepsSession = !rotated || session.forced || holdsSomething(state);
    const writes: WriteSet = { put: [], delete: [] };
    if (keepsSession)
      writes.put.push({ key, session: { ...state, lastSeen: now, expiresAt: expiry(this.settings, state.createdAt, now) } });
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
