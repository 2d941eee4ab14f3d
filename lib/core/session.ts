import { inspect } from 'node:util';
import type { Clock } from './clock';
import { InvalidUserError, KeyNotFoundError } from './errors';
import { digest, digestsEqual, isWellFormedToken, newToken, type RandomSource } from './ids';
import { assertJsonValue, assertValidKey, type JsonValue, type SessionData } from './json';
import { applyOperations, type Operation } from './operations';
import type { SessionSettings } from './settings';
import { userIdProblem } from './user';
import type { StorageKey, StoredSession } from '../store/sessionStore';

/** What SessionManager hands a Session it opens. */
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
    const problem = userIdProblem(user);
    if (problem !== null) throw new InvalidUserError(problem);
    this.#startOver(this.#settings.persistentFieldsOnLogin, user);
  }

  /** Resets to a guest session that keeps only the persistentFieldsOnLogout keys. */
  logout(): void {
    this.#startOver(this.#settings.persistentFieldsOnLogout, null);
  }

  /** Hands out a new one-time CSRF key; the session is persisted at save even if new. */
  getSecurityKey(): string {
    return this.getSecurityKeys(1)[0]!;
  }

  /** Several one-time keys at once, for parallel form posts; at most maxSecurityKeys. */
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
    const id = newToken(this.#random);
    const staticKey = newToken(this.#random);
    this.#record({ type: 'reset', id, staticKeyDigest: digest(staticKey), keep: [...keep], user, userAgent: this.#userAgent });
    this.#id = id;
    this.#revealedStaticKey = staticKey;
  }

  /** Applies to the local view first, so a failing operation (size limit) is never recorded. */
  #record(...ops: Operation[]): void {
    const next = applyOperations(this.#state, ops, this.#clock.now(), this.#settings);
    this.#state = next;
    this.#operations.push(...ops);
  }
}
