import { createHash, timingSafeEqual } from 'node:crypto';
import type { Datastore } from '@google-cloud/datastore';
import type { Clock } from '../core/clock';
import { readCookieValues } from '../core/cookies';
import {
  DataTooLargeError,
  InvalidKeyError,
  KeyNotFoundError,
  SessionError,
  StoreUnavailableError,
  TooManyKeysError,
} from '../core/errors';
import type { RandomSource } from '../core/ids';
import { assertValidKey, type JsonValue } from '../core/json';
import { GUEST_USER } from '../core/limits';
import { log } from '../setup/log';
import { clearedViurCookie, type ViurCookieSettings, viurCookie } from './cookie';
import { VIUR_COOKIE_LENGTH, VIUR_ID_PATTERN, VIUR_KEY_LENGTH, VIUR_REFRESH_SECONDS, VIUR_SECURITY_KEY_KIND } from './constants';
import { entityJson, propertyValue, type RawEntity, type RawKey, type RawValue, valueKind } from './entity';
import { type LookupResponse, lookupAll, rawKey, rawRequest } from './raw';

/**
 * A ViUR 3.8 app's sessions and one-time keys, read and changed where the app stores them
 * (docs/viur.md). What ViUR's `Session.load`/`save`, `securitykey.create`/`validate` and the user
 * module's logout do, with one difference that matters: every change is replayed onto the stored
 * entity inside a transaction, so a killed session is never written back.
 */

/** The longest cookie or key value looked up; ViUR's are 42 and 13 characters. */
const MAX_ID_LENGTH = 128;

/** What a ViurSessions is built from. */
export interface ViurSessionsOptions {
  datastore: Datastore;
  /** The session kind (SESSION_KIND, `viur-session` as ViUR's `Session.kindName`). */
  kind: string;
  namespace?: string | undefined;
  /** ViUR's `conf.user.session_life_time` in seconds (SESSION_LIFETIME_SECONDS). */
  lifetimeSeconds: number;
  /** ViUR's `conf.user.session_persistent_fields_on_logout` (SESSION_PERSISTENT_FIELDS_ON_LOGOUT). */
  persistentFieldsOnLogout: readonly string[];
  /** Most keys the data may hold after a change (SESSION_MAX_DATA_KEYS). */
  maxDataKeys: number;
  /** Most bytes the data's JSON form may take after a change (SESSION_MAX_DATA_BYTES), as in native. */
  maxDataBytes: number;
  cookie: ViurCookieSettings;
  /** Deadline of each Datastore call. */
  timeoutMs: number;
  clock: Clock;
  random: RandomSource;
  /** Resolves once the client can make calls (lib/setup/credentials.ts). */
  ready?: () => Promise<void>;
}

/** A session as it is shown: ViUR's `user` string (null for a guest) and the data without `data.user`. */
export interface ViurSessionView {
  user: string | null;
  data: Record<string, JsonValue>;
}

/** What the answer must carry after a call: the cookie to set (or clear) and a newly made static key. */
export interface ViurOutcome {
  setCookie: string | null;
  staticSecurityKey: string | null;
}

/** What a request offers as its CSRF proof: a one-time key and the static-key header values. */
export interface ViurCsrfProof {
  oneTimeKey?: string | undefined;
  staticKeys: readonly string[];
}

/**
 * No valid one-time or static key (nothing but a presented one-time key's deletion was written);
 * code `csrf`, 403.
 *
 * @example
 * await viur.change(cookie, { oneTimeKey: 'spent', staticKeys: [] }, (d) => d.set('a', 1)); // throws ViurCsrfError
 */
export class ViurCsrfError extends SessionError {
  constructor() {
    super('csrf', 'a valid one-time key or static key of this session is required', 403);
  }
}

/**
 * Logout of a session without a logged-in user: ViUR's logout answers Unauthorized
 * (modules/user.py:1606-1607); code `unauthenticated`, 401.
 *
 * @example
 * await viur.change(guestCookie, { staticKeys: [staticKey] }, (d) => d.logout(['language'])); // throws ViurNotLoggedInError
 */
export class ViurNotLoggedInError extends SessionError {
  constructor() {
    super('unauthenticated', 'the session has no logged-in user', 401);
  }
}

/** A stored session as this module works on it. */
interface Loaded {
  cookie: string;
  data: Record<string, RawValue>;
  staticKey: string;
  lastseen: number;
  user: string;
}

/**
 * The session of one change, as the change sees it: its data as stored values, ViUR's user, and
 * the operations of the routes (set, delete, reset, logout, touch). Draft changes are written only
 * when the change returns; a throw writes none of them. ViurSessions.change() hands it out.
 *
 * @example
 * await viur.change(cookie, { staticKeys: [staticKey] }, (draft) => {
 *   if (!draft.has('visits')) draft.set('visits', 1);
 *   return draft.view();
 * });
 */
export class ViurDraft {
  /** The live session this draft started from, or null (a new one is made if the draft is kept). */
  readonly loaded: Readonly<Loaded> | null;
  #data: Record<string, RawValue>;
  #changed = false;
  #replaced = false;
  #ended = false;

  /** A draft of `loaded` (a live session's stored parts), or of a session not yet stored (null). */
  constructor(loaded: Loaded | null) {
    this.loaded = loaded;
    this.#data = loaded ? { ...loaded.data } : {};
  }

  /**
   * Whether a logged-in user is in `data.user` (what ViUR's getCurrentUser reads, modules/user.py:1398-1407).
   *
   * @example
   * if (!draft.loggedIn) return { status: 401 };
   */
  get loggedIn(): boolean {
    const u = this.#data.user;
    return u !== undefined && valueKind(u) === 'entityValue' && !!u.entityValue?.key;
  }

  /**
   * The view: `user` is the stored string while data.user holds a user, else null; data without `user`.
   *
   * @example
   * draft.view(); // { user: 'ahBz…', data: { language: 'de' } }
   */
  view(): ViurSessionView {
    const { user: _hidden, ...rest } = this.#data;
    void _hidden;
    const user = this.loggedIn ? (this.loaded?.user ?? null) : null;
    return { user: user === GUEST_USER ? null : user, data: entityJson(rest) };
  }

  /**
   * Whether the data has `key` (never `user`).
   *
   * @example
   * draft.has('language'); // true
   */
  has(key: string): boolean {
    return key !== 'user' && Object.hasOwn(this.#data, key);
  }

  /**
   * ViUR's `session[key] = value`: the value stored as ViUR's save stores it (lib/viur/entity.ts).
   *
   * @example
   * draft.set('cart', { items: [1, 2] }); // an entity without key holding an array of integers
   */
  set(key: string, value: JsonValue): void {
    assertWritableKey(key);
    this.#data[key] = propertyValue(value);
    this.#changed = true;
  }

  /**
   * Sets each key of `values`; all or nothing (every value is converted before any is set).
   *
   * @example
   * draft.merge({ language: 'en', theme: 'dark' });
   */
  merge(values: Record<string, JsonValue>): void {
    const converted = Object.entries(values).map(([k, v]) => {
      assertWritableKey(k);
      return [k, propertyValue(v)] as const;
    });
    for (const [k, v] of converted) this.#data[k] = v;
    this.#changed = true;
  }

  /**
   * ViUR's `del session[key]`: KeyNotFoundError when absent.
   *
   * @example
   * draft.delete('cart');
   */
  delete(key: string): void {
    assertWritableKey(key);
    if (!this.has(key)) throw new KeyNotFoundError(key);
    delete this.#data[key];
    this.#changed = true;
  }

  /**
   * ViUR's `markChanged()`: the session is written (created when there is none).
   *
   * @example
   * draft.touch();
   */
  touch(): void {
    this.#changed = true;
  }

  /**
   * ViUR's `reset()` (session.py:188-202): the old session and its bound keys are deleted, a new
   * one with a new cookie and static key is written, holding only `keep` of the old data.
   *
   * @example
   * draft.reset(); // an empty guest session under a new cookie
   */
  reset(keep: readonly string[] = []): void {
    const kept: Record<string, RawValue> = {};
    for (const k of keep) if (k !== 'user' && Object.hasOwn(this.#data, k)) kept[k] = this.#data[k]!;
    this.#data = kept;
    this.#replaced = true;
    this.#changed = true;
    this.#ended = false;
  }

  /**
   * The user module's logout (modules/user.py:1601-1621): with persistent fields present, a reset
   * keeping them; else `clear()`: the session and its keys are deleted and nothing is written.
   * Throws ViurNotLoggedInError for a session without a logged-in user.
   *
   * @example
   * draft.logout(['language']);
   */
  logout(persistent: readonly string[]): void {
    if (!this.loggedIn) throw new ViurNotLoggedInError();
    if (persistent.some((k) => k !== 'user' && Object.hasOwn(this.#data, k))) {
      this.reset(persistent);
    } else {
      this.#data = {};
      this.#ended = true;
      this.#changed = false;
    }
  }

  /**
   * What the commit is to do with this draft (ViurSessions reads it after the change ran).
   *
   * @example
   * draft.plan(); // { data: {…}, changed: true, replaced: false, ended: false }
   */
  plan(): { data: Record<string, RawValue>; changed: boolean; replaced: boolean; ended: boolean } {
    return { data: this.#data, changed: this.#changed, replaced: this.#replaced, ended: this.#ended };
  }
}

function assertWritableKey(key: string): void {
  assertValidKey(key);
  if (key === 'user') throw new InvalidKeyError('"user" holds the app\'s logged-in user: only the app sets it');
}

/** Alphabet of ViUR's `utils.string.random`. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A random string of ASCII letters and digits, as ViUR's cookie values and keys are: unbiased
 * (bytes of 248 and above are drawn again).
 *
 * @example
 * viurRandom(cryptoRandom, 42); // 'a8Fk…' (42 characters)
 */
export function viurRandom(random: RandomSource, length: number): string {
  let out = '';
  while (out.length < length) {
    for (const b of random.bytes(length * 2)) {
      if (b < 248 && out.length < length) out += ALPHABET[b % 62];
    }
  }
  return out;
}

/** Whether `value` can be a ViUR cookie or key value (ASCII letters and digits), worth a lookup. */
function wellFormedId(value: string | undefined): value is string {
  return value !== undefined && value.length > 0 && value.length <= MAX_ID_LENGTH && VIUR_ID_PATTERN.test(value);
}

/** ViUR's `hmac.compare_digest` on the static key: constant time whatever the lengths. */
function sameSecret(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(h(a), h(b)) && a === b;
}

/** gRPC status codes read here. */
const ABORTED = 10;
const INVALID_ARGUMENT = 3;

type Mutation = { insert: RawEntity } | { update: RawEntity } | { upsert: RawEntity } | { delete: RawKey };

/** What a transactional change decides: what to write and what the caller gets. */
interface TxResult<T> {
  mutations: Mutation[];
  result: T;
}

/**
 * The sessions of a ViUR 3.8 app in the same project, database and namespace. One instance serves
 * every request; build it with createViurSessions() from the configuration, or directly.
 *
 * @example
 * const viur = new ViurSessions({ datastore: new Datastore(), kind: 'viur-session', lifetimeSeconds: 3600,
 *   persistentFieldsOnLogout: ['language'], maxDataKeys: 10_000, maxDataBytes: 786_432, cookie: { name: 'viur_cookie_my-project', sameSite: 'lax' },
 *   timeoutMs: 5000, clock: { now: () => Date.now() }, random: { bytes: (n) => randomBytes(n) } });
 * const { view } = await viur.read(req.headers.cookie); // { user: 'ahBz…' or null, data: { language: 'de' } }
 */
export class ViurSessions {
  readonly options: ViurSessionsOptions;

  /**
   * A session layer on `options.datastore`; createViurSessions() builds one from the configuration.
   *
   * @example
   * const viur = new ViurSessions({ ...createViurSessions(loadConfig()).options, lifetimeSeconds: 7200 });
   */
  constructor(options: ViurSessionsOptions) {
    this.options = options;
  }

  /**
   * The first cookie value under the configured name that can be a ViUR session key.
   *
   * @example
   * viur.cookieValue('viur_cookie_p1=abc123'); // 'abc123'
   */
  cookieValue(cookieHeader: string | undefined): string | null {
    return readCookieValues(cookieHeader, this.options.cookie.name).find((v) => wellFormedId(v)) ?? null;
  }

  /**
   * The session the cookie names, as `{user, data}`: one lookup, plus one transaction when ViUR's
   * `load()` would refresh `lastseen` (older than 5 minutes, session.py:91). An unknown or expired
   * cookie reads as an empty guest session and its cookie is cleared (nothing is written).
   *
   * @example
   * const { view, outcome } = await viur.read(req.headers.cookie);
   * if (outcome.setCookie) res.append('Set-Cookie', outcome.setCookie);
   */
  async read(cookieHeader: string | undefined): Promise<{ view: ViurSessionView; outcome: ViurOutcome }> {
    const cookie = this.cookieValue(cookieHeader);
    const loaded = cookie === null ? null : this.#live(cookie, await this.#lookupOne(this.#sessionKey(cookie)));
    if (loaded === null) {
      return {
        view: { user: null, data: {} },
        outcome: { setCookie: cookie === null ? null : clearedViurCookie(this.options.cookie), staticSecurityKey: null },
      };
    }
    if (!this.#refreshDue(loaded)) return { view: new ViurDraft(loaded).view(), outcome: { setCookie: null, staticSecurityKey: null } };
    const { result: view, outcome } = await this.change(cookieHeader, null, (draft) => draft.view());
    return { view, outcome };
  }

  /**
   * Whether `key` is this session's static key (`static_security_key`, or `staticSecurityKey` of
   * older apps), compared in constant time as ViUR's validate does (securitykey.py:95-97). One lookup.
   *
   * @example
   * await viur.validateStaticKey(req.headers.cookie, req.get('Sec-X-ViUR-StaticSessionKey')); // true or false
   */
  async validateStaticKey(cookieHeader: string | undefined, key: string): Promise<boolean> {
    const cookie = this.cookieValue(cookieHeader);
    const loaded = cookie === null ? null : this.#live(cookie, await this.#lookupOne(this.#sessionKey(cookie)));
    return loaded !== null && loaded.staticKey !== '' && sameSecret(loaded.staticKey, key);
  }

  /**
   * Runs `change` on the cookie's session inside one transaction, after the CSRF check when
   * `csrf` is given, and commits what it did in ViUR's stored shape (exactly `data`, `lastseen`,
   * `static_security_key`, `user`). A session deleted meanwhile is never written again: a change
   * of a session that is gone starts a new one under a new cookie, as ViUR's load does.
   * `mintKeys` one-time keys bound to the resulting session are stored in the same commit.
   * A consumed one-time key is deleted even when the check then fails (ViUR deletes it first,
   * securitykey.py:104); then ViurCsrfError is thrown. Bound keys of a session that ended are
   * deleted after the commit (ViUR's clear_session_skeys, securitykey.py:135-143).
   *
   * @example
   * const { result, outcome } = await viur.change(req.headers.cookie, { oneTimeKey: req.get('X-Security-Key'), staticKeys: [] }, (draft) => {
   *   draft.set('language', 'de');
   *   return draft.view();
   * });
   */
  async change<T>(
    cookieHeader: string | undefined,
    csrf: ViurCsrfProof | null,
    change: (draft: ViurDraft) => T,
    options: { mintKeys?: number | ((result: T, consumedKey: boolean) => number) } = {},
  ): Promise<{ result: T; outcome: ViurOutcome; keys: string[] }> {
    const cookie = this.cookieValue(cookieHeader);
    const oneTime = csrf && wellFormedId(csrf.oneTimeKey) ? csrf.oneTimeKey : undefined;
    let endedCookie: string | null = null;
    let outcome: ViurOutcome = { setCookie: null, staticSecurityKey: null };
    let keys: string[] = [];
    const outcomeOrError = await this.#transaction(async (lookup): Promise<TxResult<{ value?: T; error?: Error }>> => {
      const wanted: RawKey[] = [];
      if (cookie !== null) wanted.push(this.#sessionKey(cookie));
      if (oneTime !== undefined) wanted.push(this.#securityKey(oneTime));
      const found = await lookup(wanted);
      const stored = cookie === null ? null : (found.get(this.#nameOf(this.#sessionKey(cookie))) ?? null);
      const loaded = cookie === null ? null : this.#live(cookie, stored);
      const mutations: Mutation[] = [];
      const now = this.options.clock.now();
      endedCookie = null;
      outcome = { setCookie: null, staticSecurityKey: null };
      keys = [];
      if (csrf) {
        let ok = false;
        if (oneTime !== undefined) {
          const keyEntity = found.get(this.#nameOf(this.#securityKey(oneTime))) ?? null;
          if (keyEntity !== null) {
            // ViUR deletes the key before it checks it (securitykey.py:104-120).
            mutations.push({ delete: this.#securityKey(oneTime) });
            ok = this.#keyValidFor(keyEntity, loaded?.cookie ?? null, now);
          }
        }
        const consumed = ok;
        if (!ok && loaded !== null) ok = csrf.staticKeys.some((k) => loaded.staticKey !== '' && sameSecret(loaded.staticKey, k));
        if (!ok) return { mutations, result: { error: new ViurCsrfError() } };
        return this.#applyChange(loaded, stored, cookie, mutations, now, change, options, consumed, (o, k, e) => {
          outcome = o;
          keys = k;
          endedCookie = e;
        });
      }
      return this.#applyChange(loaded, stored, cookie, mutations, now, change, options, false, (o, k, e) => {
        outcome = o;
        keys = k;
        endedCookie = e;
      });
    });
    // The keys of an ended session can never validate again (their cookie names nothing): their
    // deletion is tidying, as ViUR defers it, and its failure does not undo the committed change.
    if (endedCookie !== null) {
      await this.#deleteBoundKeys(endedCookie).catch((err: unknown) =>
        log('WARNING', 'could not delete the one-time keys of an ended ViUR session', { error: String(err) }),
      );
    }
    if (outcomeOrError.error !== undefined) throw outcomeOrError.error;
    return { result: outcomeOrError.value as T, outcome, keys };
  }

  #applyChange<T>(
    loaded: Loaded | null,
    stored: RawEntity | null,
    cookie: string | null,
    mutations: Mutation[],
    now: number,
    change: (draft: ViurDraft) => T,
    options: { mintKeys?: number | ((result: T, consumedKey: boolean) => number) },
    consumed: boolean,
    report: (outcome: ViurOutcome, keys: string[], endedCookie: string | null) => void,
  ): TxResult<{ value?: T; error?: Error }> {
    const draft = new ViurDraft(loaded);
    let value: T;
    try {
      value = change(draft);
    } catch (err) {
      // A refusal writes nothing but the consumed key's deletion.
      report({ setCookie: null, staticSecurityKey: null }, [], null);
      return { mutations, result: { error: err instanceof Error ? err : new Error(String(err)) } };
    }
    const plan = draft.plan();
    const mint = typeof options.mintKeys === 'function' ? options.mintKeys(value, consumed) : (options.mintKeys ?? 0);
    const count = Object.keys(plan.data).length;
    if (plan.changed && count > this.options.maxDataKeys) {
      report({ setCookie: null, staticSecurityKey: null }, [], null);
      return { mutations, result: { error: new TooManyKeysError(count, this.options.maxDataKeys) } };
    }
    // Checked on a change only, as native does: the JSON form is what a client reads back, and
    // keeps the entity well under Datastore's 1 MiB.
    if (plan.changed) {
      const size = Buffer.byteLength(JSON.stringify(entityJson(plan.data)), 'utf8');
      if (size > this.options.maxDataBytes) {
        report({ setCookie: null, staticSecurityKey: null }, [], null);
        return { mutations, result: { error: new DataTooLargeError(size, this.options.maxDataBytes) } };
      }
    }
    // A stored entity that is not live (expired) is deleted when a new session replaces it, as
    // ViUR's reset() does on load (session.py:79-82, 241-245).
    const endsOld = cookie !== null && stored !== null && (loaded === null || plan.replaced || plan.ended);
    if (endsOld) mutations.push({ delete: this.#sessionKey(cookie) });
    let outcome: ViurOutcome = { setCookie: null, staticSecurityKey: null };
    let target: string | null = loaded !== null && !plan.replaced && !plan.ended ? loaded.cookie : null;
    // ViUR's save writes when the session changed, and its load marks it changed every 5 minutes;
    // minting a key on a session that does not exist yet starts one (securitykey.py:66-70), on a
    // live one it writes only the key.
    const write = !plan.ended && (plan.changed || (mint > 0 && loaded === null) || (loaded !== null && this.#refreshDue(loaded)));
    if (write && target === null) {
      target = viurRandom(this.options.random, VIUR_COOKIE_LENGTH);
      const staticKey = viurRandom(this.options.random, VIUR_KEY_LENGTH);
      mutations.push({ insert: this.#sessionEntity(target, plan.data, staticKey, GUEST_USER, now) });
      outcome = { setCookie: this.#cookie(target), staticSecurityKey: staticKey };
    } else if (write && loaded !== null && target !== null) {
      const user = draft.loggedIn ? loaded.user : GUEST_USER;
      mutations.push({ update: this.#sessionEntity(target, plan.data, loaded.staticKey, user, now) });
      outcome = { setCookie: this.#cookie(target), staticSecurityKey: null };
    } else if (plan.ended || (cookie !== null && loaded === null)) {
      outcome = { setCookie: clearedViurCookie(this.options.cookie), staticSecurityKey: null };
    }
    const keys: string[] = [];
    if (!plan.ended && target !== null) {
      for (let i = 0; i < mint; i++) {
        const key = viurRandom(this.options.random, VIUR_KEY_LENGTH);
        keys.push(key);
        mutations.push({ insert: this.#keyEntity(key, target, now) });
      }
    }
    report(outcome, keys, endsOld && cookie !== null ? cookie : null);
    return { mutations, result: { value } };
  }

  /** ViUR's validate with session_bound=True after the deletion: not expired, bound to this session. */
  #keyValidFor(entity: RawEntity, cookie: string | null, now: number): boolean {
    const until = entity.properties.viur_until;
    if (!until || valueKind(until) !== 'timestampValue' || !until.timestampValue) return false;
    const untilMs = Number(until.timestampValue.seconds) * 1000 + (until.timestampValue.nanos ?? 0) / 1e6;
    if (untilMs < now) return false;
    const bound = entity.properties.viur_session;
    const boundCookie = bound && valueKind(bound) === 'stringValue' ? bound.stringValue : null;
    return cookie !== null && boundCookie === cookie;
  }

  #refreshDue(loaded: Loaded): boolean {
    return loaded.lastseen < this.options.clock.now() / 1000 - VIUR_REFRESH_SECONDS;
  }

  #cookie(value: string): string {
    return viurCookie(this.options.cookie, value, this.options.lifetimeSeconds);
  }

  /** The stored entity as a live session, or null when it is missing or expired (session.py:78-82). */
  #live(cookie: string, entity: RawEntity | null): Loaded | null {
    if (entity === null) return null;
    const p = entity.properties;
    const lastseenValue = p.lastseen;
    const lastseen = lastseenValue ? Number(lastseenValue.doubleValue ?? lastseenValue.integerValue ?? NaN) : NaN;
    if (!(lastseen >= this.options.clock.now() / 1000 - this.options.lifetimeSeconds)) return null;
    const str = (v: RawValue | undefined) => (v && valueKind(v) === 'stringValue' ? (v.stringValue ?? '') : '');
    const staticKey = str(p.static_security_key) || str(p.staticSecurityKey);
    const data = p.data && valueKind(p.data) === 'entityValue' ? (p.data.entityValue?.properties ?? {}) : {};
    return { cookie, data: { ...data }, staticKey, lastseen, user: str(p.user) || GUEST_USER };
  }

  /** Exactly the four properties of ViUR's save (session.py:122-130): `data` unindexed as a whole. */
  #sessionEntity(cookie: string, data: Record<string, RawValue>, staticKey: string, user: string, now: number): RawEntity {
    return {
      key: this.#sessionKey(cookie),
      properties: {
        data: { entityValue: { properties: data }, excludeFromIndexes: true },
        static_security_key: { stringValue: staticKey },
        lastseen: { doubleValue: now / 1000 },
        user: { stringValue: user },
      },
    };
  }

  /** A bound one-time key as securitykey.create writes it (securitykey.py:64-81). */
  #keyEntity(key: string, cookie: string, now: number): RawEntity {
    const until = now + this.options.lifetimeSeconds * 1000;
    return {
      key: this.#securityKey(key),
      properties: {
        viur_session: { stringValue: cookie },
        viur_until: { timestampValue: { seconds: String(Math.floor(until / 1000)), nanos: (until % 1000) * 1e6 } },
      },
    };
  }

  #partition(): RawKey['partitionId'] {
    return this.options.namespace ? { namespaceId: this.options.namespace } : undefined;
  }

  #sessionKey(cookie: string): RawKey {
    return rawKey(this.options.kind, cookie, this.options.namespace);
  }

  #securityKey(key: string): RawKey {
    return rawKey(VIUR_SECURITY_KEY_KIND, key, this.options.namespace);
  }

  #nameOf(key: RawKey): string {
    const e = key.path[key.path.length - 1]!;
    return `${e.kind}\u0000${e.name ?? ''}`;
  }

  async #lookupOne(key: RawKey): Promise<RawEntity | null> {
    const found = await this.#lookup([key], undefined);
    return found.get(this.#nameOf(key)) ?? null;
  }

  async #lookup(keys: RawKey[], transaction: Uint8Array | undefined): Promise<Map<string, RawEntity>> {
    const found = await lookupAll(keys, (pending) => this.#rpc<LookupResponse>('lookup', { keys: pending }, transaction));
    const out = new Map<string, RawEntity>();
    for (const entity of found) if (entity.key) out.set(this.#nameOf(entity.key), entity);
    return out;
  }

  /** One transaction: begin, `body` with lookups in it, commit; an aborted one runs again (5 tries in all). */
  async #transaction<T>(body: (lookup: (keys: RawKey[]) => Promise<Map<string, RawEntity>>) => Promise<TxResult<T>>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const { transaction } = await this.#rpc<{ transaction: Uint8Array }>('beginTransaction', {});
      let committed = false;
      try {
        const { mutations, result } = await body((keys) =>
          keys.length === 0 ? Promise.resolve(new Map<string, RawEntity>()) : this.#lookup(keys, transaction),
        );
        await this.#rpc('commit', { mutations }, transaction);
        committed = true;
        return result;
      } catch (err) {
        if ((err as { code?: unknown }).code === ABORTED && attempt < 5) continue;
        throw err;
      } finally {
        if (!committed) await this.#rpc('rollback', {}, transaction).catch(() => undefined);
      }
    }
  }

  /** Deletes the one-time keys bound to an ended session: a keys-only query, then one commit per 500. */
  async #deleteBoundKeys(cookie: string): Promise<void> {
    const query = {
      kind: [{ name: VIUR_SECURITY_KEY_KIND }],
      projection: [{ property: { name: '__key__' } }],
      filter: { propertyFilter: { property: { name: 'viur_session' }, op: 'EQUAL', value: { stringValue: cookie } } },
      limit: { value: 500 },
    };
    for (;;) {
      const partitionId = this.#partition();
      const r = await this.#rpc<{ batch?: { entityResults?: Array<{ entity: RawEntity }> } }>(
        'runQuery',
        partitionId ? { partitionId, query } : { query },
      );
      const keys = (r.batch?.entityResults ?? []).map((e) => e.entity.key!).filter(Boolean);
      if (keys.length === 0) return;
      await this.#rpc('commit', { mutations: keys.map((k) => ({ delete: k })) });
      if (keys.length < 500) return;
    }
  }

  /**
   * One call of the generated client through the Datastore client (its channel, auth, project and
   * database); inside `transaction` through a Transaction of that id, which makes a commit
   * transactional and a lookup read in it.
   */
  async #rpc<R>(method: string, reqOpts: object, transaction?: Uint8Array): Promise<R> {
    await this.options.ready?.();
    let via: Pick<Datastore, 'request_'> = this.options.datastore;
    if (transaction !== undefined) {
      const txn = this.options.datastore.transaction();
      (txn as unknown as { id: Uint8Array }).id = transaction;
      via = txn;
    }
    try {
      return await rawRequest<R>(via, method, reqOpts, { timeout: this.options.timeoutMs, maxRetries: 0 });
    } catch (err) {
      if ((err as { code?: unknown }).code === ABORTED) throw err;
      if (
        (err as { code?: unknown }).code === INVALID_ARGUMENT &&
        /longer than|too (big|large)|exceeds|invalid nested entity/i.test(String((err as Error).message))
      ) {
        throw new DataTooLargeError(0, 0, 'the session would be larger than Datastore stores');
      }
      throw new StoreUnavailableError(undefined, err);
    }
  }
}
