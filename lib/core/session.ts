import { inspect } from 'node:util';
import type { Clock } from './clock';
import { InvalidUserError, KeyNotFoundError } from './errors';
import { digest, digestsEqual, isWellFormedToken, newToken, type RandomSource } from './ids';
import { assertJsonValue, assertValidKey, type JsonValue, type SessionData } from './json';
import { applyOperations, type Operation } from './operations';
import type { SessionSettings } from './settings';
import { userIdProblem } from './user';
import type { StorageKey, StoredSession } from '../store/sessionStore';

/** What SessionManager hands a Session it opens (internal: callers get sessions from the manager). */
export interface SessionInit {
  id: string;
  state: StoredSession;
  loadedKey: StorageKey | null;
  staleCookie: boolean;
  /** The static key of a session this request creates, revealed once when it is saved. */
  revealedStaticKey: string | null;
  settings: SessionSettings;
  clock: Clock;
  random: RandomSource;
  userAgent?: string | null;
}

/** What a save did and what the response must carry (SessionManager.save(), withSession()). */
export interface SaveOutcome {
  /** Whether anything was committed to the store. */
  written: boolean;
  /** A Set-Cookie header value to send, if the cookie must change. */
  setCookie: string | null;
  /** The static security key, when this save stored a new one: revealed exactly once. */
  staticSecurityKey: string | null;
}

/**
 * One request's view of a session: a map of JSON values plus the user binding and security keys.
 * It never touches the store itself; SessionManager loads and saves it. Secrets (the id, the keys)
 * are not enumerable and not shown by console.log or JSON.stringify. Use it inside the callback of
 * SessionManager.withSession(), or between load() and save(); changes are recorded as operations
 * and merged into what is stored when the session is saved.
 *
 * @example
 * const { result } = await sessions.withSession(req.headers.cookie, (session) => {
 *   const visits = session.get<number>('visits', 0) + 1;
 *   session.set('visits', visits);
 *   return visits;
 * });
 */
export class Session {
  #id: string;
  #state: StoredSession;
  readonly #operations: Operation[] = [];
  #forced = false;
  #revealedStaticKey: string | null;

  /** The storage key the session was read under; null when it is not stored yet. */
  readonly loadedKey: StorageKey | null;
  /** The client sent a cookie that named no live session. */
  readonly staleCookie: boolean;
  readonly #settings: SessionSettings;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  /** The stored User-Agent of the request: a session this request starts (reset, login) keeps it. */
  readonly #userAgent: string | null;

  /** @internal created by SessionManager */
  constructor(init: SessionInit) {
    this.#id = init.id;
    this.#state = init.state;
    this.loadedKey = init.loadedKey;
    this.staleCookie = init.staleCookie;
    this.#revealedStaticKey = init.revealedStaticKey;
    this.#settings = init.settings;
    this.#clock = init.clock;
    this.#random = init.random;
    this.#userAgent = init.userAgent ?? null;
  }

  /**
   * True until the session has been written once.
   *
   * @example
   * if (session.isNew) session.set('firstVisit', new Date().toISOString());
   */
  get isNew(): boolean {
    return this.loadedKey === null;
  }

  /**
   * The user this session is bound to (by login), or null for a guest session.
   *
   * @example
   * if (session.user === null) throw new Error('please log in');
   */
  get user(): string | null {
    return this.#state.user;
  }

  /**
   * Whether the data holds `key` (even with the value null).
   *
   * @example
   * if (!session.has('cart')) session.set('cart', []);
   */
  has(key: string): boolean {
    return Object.hasOwn(this.#state.data, key);
  }

  /**
   * A copy of the value under `key` (changing it changes nothing stored), or `fallback` (undefined
   * when none is given) when the session has no such key. `T` is only asserted, not checked.
   *
   * @example
   * const language = session.get<string>('language', 'en');
   * const cart = session.get<string[]>('cart'); // string[] | undefined
   */
  get<T extends JsonValue = JsonValue>(key: string): T | undefined;
  get<T extends JsonValue = JsonValue>(key: string, fallback: T): T;
  get(key: string, fallback?: JsonValue): JsonValue | undefined {
    return this.has(key) ? structuredClone(this.#state.data[key]) : fallback;
  }

  /**
   * Like `session[key]` in the original: fails on a missing key (KeyNotFoundError), for callers for
   * which a missing key is a bug rather than a default.
   *
   * @example
   * const checkoutId = session.getOrThrow<string>('checkoutId');
   */
  getOrThrow<T extends JsonValue = JsonValue>(key: string): T {
    if (!this.has(key)) throw new KeyNotFoundError(key);
    return structuredClone(this.#state.data[key]) as T;
  }

  /**
   * Stores a copy of `value` under `key`. The key is checked (InvalidKeyError), the value must be
   * plain JSON (InvalidValueError) and the data must stay within its limits (DataTooLargeError,
   * TooManyKeysError); a refused set changes nothing. Written when the session is saved.
   *
   * @example
   * session.set('language', 'de');
   * session.set('cart', [{ sku: 'A1', qty: 2 }]);
   */
  set(key: string, value: JsonValue): void {
    assertValidKey(key);
    assertJsonValue(value);
    this.#record({ type: 'set', key, value: structuredClone(value) });
  }

  /**
   * @internal set() without the copy, for a value parsed from a request for this call alone
   * (sessionApi's PUT): nothing else holds it, so a second deep copy of what was just parsed would
   * only cost time.
   */
  setParsed(key: string, value: JsonValue): void {
    assertValidKey(key);
    assertJsonValue(value);
    this.#record({ type: 'set', key, value });
  }

  /**
   * Removes `key`. Fails on a missing key, as the original's `del session[key]` (KeyNotFoundError);
   * check has() first when absence is fine.
   *
   * @example
   * if (session.has('cart')) session.delete('cart');
   */
  delete(key: string): void {
    if (!this.has(key)) throw new KeyNotFoundError(key);
    this.#record({ type: 'delete', key });
  }

  /**
   * Sets every key of `values`; all or nothing: one bad key or value (or a broken limit) and none of
   * them is set. What PATCH /session does.
   *
   * @example
   * session.merge({ language: 'de', theme: 'dark' });
   */
  merge(values: Record<string, JsonValue>): void {
    this.#merge(values, true);
  }

  /** @internal merge() without the copies, for an object parsed from a request for this call alone (sessionApi's PATCH). */
  mergeParsed(values: Record<string, JsonValue>): void {
    this.#merge(values, false);
  }

  /**
   * Copies of all `[key, value]` pairs.
   *
   * @example
   * for (const [key, value] of session.entries()) console.log(key, value);
   */
  entries(): Array<[string, JsonValue]> {
    return Object.entries(this.#state.data).map(([k, v]) => [k, structuredClone(v)]);
  }

  /**
   * The same as entries(), under the original's (Python) name.
   *
   * @example
   * const pairs = session.items(); // [['language', 'de'], …]
   */
  items(): Array<[string, JsonValue]> {
    return this.entries();
  }

  /**
   * A copy of all data, as a plain object.
   *
   * @example
   * res.end(JSON.stringify({ user: session.user, data: session.toObject() }));
   */
  toObject(): SessionData {
    return Object.assign({}, structuredClone(this.#state.data));
  }

  /**
   * Forces a write at save even when nothing changed: lastSeen is refreshed (and a new session is
   * stored). What POST /session/touch does; normally a read refreshes lastSeen only when it is
   * older than SESSION_REFRESH_INTERVAL_SECONDS.
   *
   * @example
   * session.markChanged();
   * await sessions.save(session); // written: true
   */
  markChanged(): void {
    this.#forced = true;
  }

  /**
   * Ends this session and starts an empty one with a new id and new keys. At save the old id is
   * left as a short-lived tombstone, and the outcome carries the new cookie and static key.
   *
   * @example
   * session.reset();
   * const { setCookie, staticSecurityKey } = await sessions.save(session);
   */
  reset(): void {
    this.#startOver([], null, 'reset');
  }

  /**
   * Binds `user` after a reset that keeps only the persistentFieldsOnLogin keys: a new id, so a
   * session id known before the login (fixation) is worthless after it. Throws InvalidUserError for
   * an id userIdProblem() refuses. Call it once your own code has authenticated the user; with
   * SESSION_MAX_SESSIONS_PER_USER set, the save ends the user's sessions beyond the cap.
   *
   * @example
   * await sessions.withSession(req.headers.cookie, (session) => session.login('alice'));
   */
  login(user: string): void {
    const problem = userIdProblem(user);
    if (problem !== null) throw new InvalidUserError(problem);
    this.#startOver(this.#settings.persistentFieldsOnLogin, user, 'login');
  }

  /**
   * Resets to a guest session that keeps only the persistentFieldsOnLogout keys: a new id, the old
   * one left as a tombstone. A logout that keeps nothing stores no new session, only the tombstone.
   *
   * @example
   * const { outcome } = await sessions.withSession(req.headers.cookie, (session) => session.logout());
   * if (outcome.setCookie) res.appendHeader('Set-Cookie', outcome.setCookie);
   */
  logout(): void {
    this.#startOver(this.#settings.persistentFieldsOnLogout, null, 'logout');
  }

  /**
   * Hands out a new one-time CSRF key; the session is persisted at save even if new. Only its digest
   * is stored; give the key to the page, which sends it back (X-Security-Key) with its next change.
   *
   * @example
   * const { result: key } = await sessions.withSession(req.headers.cookie, (session) => session.getSecurityKey());
   */
  getSecurityKey(): string {
    return this.getSecurityKeys(1)[0]!;
  }

  /**
   * Several one-time keys at once, for parallel form posts; at most maxSecurityKeys (RangeError
   * otherwise). Beyond maxSecurityKeys valid keys, the oldest are dropped.
   *
   * @example
   * const keys = session.getSecurityKeys(4); // four 43-character keys
   */
  getSecurityKeys(count: number): string[] {
    if (!Number.isInteger(count) || count < 1 || count > this.#settings.maxSecurityKeys) {
      throw new RangeError(`count must be an integer from 1 to ${this.#settings.maxSecurityKeys}`);
    }
    const keys = Array.from({ length: count }, () => newToken(this.#random));
    this.#record({ type: 'addKeys', digests: keys.map(digest) });
    return keys;
  }

  /**
   * True when `key` is one of this session's one-time keys; it is then consumed and a fresh key
   * can be fetched. Compared in constant time. The consumption is committed by save (or by
   * withSession), atomically: of two requests racing with one key, only one commits.
   *
   * @example
   * await sessions.withSession(req.headers.cookie, (session) => {
   *   if (!session.validateSecurityKey(req.headers['x-security-key'] as string)) throw new Error('csrf');
   *   session.set('email', newEmail);
   * });
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

  /**
   * True when `key` is this session's static key (revealed once, in SaveOutcome.staticSecurityKey,
   * when the session was created, reset or rotated). Not consumed: it stays valid for the session's
   * life. Compared in constant time.
   *
   * @example
   * const session = await sessions.load(req.headers.cookie);
   * const ok = session.validateStaticSecurityKey(req.headers['x-static-security-key'] as string);
   */
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

  /**
   * What JSON.stringify shows of a session: its user and a copy of its data, never its id or keys.
   *
   * @example
   * JSON.stringify(session); // '{"user":"alice","data":{"language":"de"}}'
   */
  toJSON(): { user: string | null; data: SessionData } {
    return { user: this.user, data: this.toObject() };
  }

  /** What console.log and util.inspect show: the user and the data keys, never secrets or values. */
  [inspect.custom](): string {
    return `Session { user: ${JSON.stringify(this.user)}, keys: ${JSON.stringify(Object.keys(this.#state.data))} }`;
  }

  #startOver(keep: readonly string[], user: string | null, cause: 'login' | 'logout' | 'reset'): void {
    const id = newToken(this.#random);
    const staticKey = newToken(this.#random);
    this.#record({ type: 'reset', id, staticKeyDigest: digest(staticKey), keep: [...keep], user, userAgent: this.#userAgent, cause });
    this.#id = id;
    this.#revealedStaticKey = staticKey;
  }

  #merge(values: Record<string, JsonValue>, copy: boolean): void {
    const entries = Object.entries(values);
    for (const [key, value] of entries) {
      assertValidKey(key);
      assertJsonValue(value, key);
    }
    const ops: Operation[] = entries.map(([key, value]) => ({ type: 'set', key, value: copy ? structuredClone(value) : value }));
    this.#record(...ops);
  }

  /** Applies to the local view first, so a failing operation (size limit) is never recorded. */
  #record(...ops: Operation[]): void {
    const next = applyOperations(this.#state, ops, this.#clock.now(), this.#settings);
    this.#state = next;
    this.#operations.push(...ops);
  }
}
