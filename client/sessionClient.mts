/**
 * The browser side of the session API: a small, dependency-free ES module. Every change needs a
 * one-time key (X-Security-Key); the client keeps a pool of them, never more than the server keeps
 * valid, and retries once after a 403 `csrf` (docs/design/client-key-pool.md). Usage: SessionClient.
 */

/** Any JSON value: what a session key may hold. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A session as the API answers it (`GET /session`, `PATCH /session`, reset, logout). */
export interface SessionView {
  user: string | null;
  data: Record<string, JsonValue>;
}

/** How a SessionClient reaches the API and how many keys it pools. */
export interface SessionClientOptions {
  /**
   * Where the API is: an absolute URL, or one relative to the page (`/api` for an API mounted under a
   * path prefix). Its path is kept: requests go to `${baseUrl}/session/…`. Default: this page's
   * origin, without the page's path (a rewrite or a path-routing load balancer serving `/session`).
   */
  baseUrl?: string;
  /** Most one-time keys held at once (pooled plus in flight); keep it at or below the server's SESSION_MAX_SECURITY_KEYS. Default 16. */
  maxKeys?: number;
  /** Keys fetched ahead when the pool runs dry. Default 4. */
  prefetch?: number;
  /** Default: 'include' when baseUrl is another origin, else 'same-origin'. */
  credentials?: RequestCredentials;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

/** Options of SessionClient.request(). */
export interface RequestOptions {
  /** A JSON body. */
  body?: JsonValue;
  /** Send a one-time key (every route that changes a session). */
  csrf?: boolean;
  /** The request replaces the session (reset, logout, a login relayed by your backend): pooled keys belong to the old one. */
  replacesSession?: boolean;
  /** Extra request headers. */
  headers?: Record<string, string>;
}

/**
 * An answer that is not 2xx, with the API's error slug (`csrf`, `cross_site`, `too_large`, …; the
 * list is in docs/api.md#errors). `code` is `http_error` when the body carried none.
 *
 * @example
 * try {
 *   await session.set('cart', bigCart);
 * } catch (err) {
 *   if (err instanceof SessionApiError && err.code === 'too_large') showMessage('Your cart is too large.');
 * }
 */
export class SessionApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SessionApiError';
  }
}

/** One live session of the signed-in user (`GET /session/devices`); times are ISO 8601. */
export interface DeviceSession {
  id: string;
  current: boolean;
  createdAt: string;
  lastSeen: string;
  userAgent: string | null;
}

/** Why the session a page was using ended underneath it (SessionEndedEvent.reason). */
export type SessionEndReason = 'session_ended' | 'user_changed';

/**
 * The `sessionended` event of a SessionClient: the session this page was using ended without this
 * client ending it. `reason` is `session_ended` when the API answered 409 `session_ended` (the
 * cookie names a session that was logged out, reset or logged in elsewhere moments ago), or
 * `user_changed` when an answer's user differs from the one this client saw last: a logout or a
 * login in another tab, a kill, another device signing this one out, an expired session. The
 * client has forgotten its pooled keys by then; the page should show it ("you were signed out")
 * and read the session again. Changes this client makes itself (logout(), reset(), a request with
 * `replacesSession`) and the first answer a client sees never fire it.
 *
 * @example
 * session.addEventListener('sessionended', (event) => {
 *   if (event.previousUser !== null) showBanner('You were signed out.');
 * });
 */
export class SessionEndedEvent extends Event {
  constructor(
    readonly reason: SessionEndReason,
    /** The user this client last saw (null: a guest session; undefined: none seen yet). */
    readonly previousUser: string | null | undefined,
    /** The user of the answer that showed the change (null: a guest); undefined after a 409, which names none. */
    readonly user: string | null | undefined,
  ) {
    super('sessionended');
  }
}

/** The events a SessionClient dispatches, for addEventListener's types. */
export interface SessionClientEventMap {
  sessionended: SessionEndedEvent;
}

const KEY_HEADER = 'X-Security-Key';
const STATIC_KEY_HEADER = 'Sec-X-ViUR-StaticSKey';

/**
 * A client for one session API (this page's origin by default, or `baseUrl` for an API under a
 * path prefix or on another origin): typed methods for every route a page uses, with the one-time
 * keys handled for you (pooled, rotated, retried once after a 403 `csrf`:
 * docs/design/client-key-pool.md). Errors are SessionApiError. It is an EventTarget: `sessionended`
 * (SessionEndedEvent) tells the page that its session ended underneath it.
 *
 * @example
 * import { SessionClient } from '/client/sessionClient.mjs';
 * const session = new SessionClient(); // this page's origin, from any page path (a Hosting rewrite)
 * const prefixed = new SessionClient({ baseUrl: '/api' }); // requests go to /api/session/…
 * const remote = new SessionClient({ baseUrl: 'https://sessions.example.com' }); // cross-origin
 * session.addEventListener('sessionended', () => showBanner('You were signed out.'));
 * await session.set('language', 'de');
 * const { user, data } = await session.getSession();
 */
export class SessionClient extends EventTarget {
  /** The API's origin and path, without a trailing slash (this page's origin by default). */
  readonly baseUrl: string;
  private readonly maxKeys: number;
  private readonly prefetch: number;
  private readonly credentials: RequestCredentials;
  private readonly fetchImpl: typeof fetch;
  private pool: string[] = [];
  /** Keys this client believes valid: pooled, in flight, or being fetched. */
  private held = 0;
  private waiters: Array<{ resolve: (key: string) => void; reject: (err: unknown) => void }> = [];
  private refillScheduled = false;
  /** Bumped when the session is replaced: keys fetched for an older one are not pooled. */
  private generation = 0;
  private lastStaticKey: string | null = null;
  /** The user of the last session view answered (undefined: none seen since the last replacement). */
  private lastUser: string | null | undefined = undefined;

  /**
   * A client; nothing is fetched until the first call. Credentials are 'include' for another
   * origin, else 'same-origin'; maxKeys is clamped to 1–100.
   *
   * @example
   * const session = new SessionClient({ baseUrl: 'https://sessions.example.com', maxKeys: 8 });
   */
  constructor(options: SessionClientOptions = {}) {
    super();
    const here = typeof location === 'undefined' ? undefined : location.href;
    // The default is the page's origin only: the page's own path (/app/page.html) is no API prefix.
    const pageOrigin = typeof location === 'undefined' || location.origin === 'null' ? undefined : location.origin;
    const base = new URL(options.baseUrl ?? pageOrigin ?? 'http://localhost/', here);
    this.baseUrl = base.origin + base.pathname.replace(/\/+$/, '');
    this.maxKeys = Math.max(1, Math.min(options.maxKeys ?? 16, 100));
    this.prefetch = Math.max(1, options.prefetch ?? 4);
    const sameOrigin = typeof location !== 'undefined' && base.origin === location.origin;
    this.credentials = options.credentials ?? (sameOrigin ? 'same-origin' : 'include');
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /**
   * The static key the server last revealed to this client (first write, reset, logout), if any.
   *
   * @example
   * const key = session.staticSecurityKey;
   * if (key) await fetch('/my-backend/upload', { method: 'POST', headers: { 'X-Static-Security-Key': key }, body: file });
   */
  get staticSecurityKey(): string | null {
    return this.lastStaticKey;
  }

  /**
   * How many one-time keys are pooled right now.
   *
   * @example
   * console.log(session.pooledKeys); // e.g. 3
   */
  get pooledKeys(): number {
    return this.pool.length;
  }

  /**
   * The whole session: `GET /session`.
   *
   * @example
   * const { user, data } = await session.getSession(); // { user: null, data: {} } for a new visitor
   */
  getSession(): Promise<SessionView> {
    return this.request<SessionView>('GET', '/session');
  }

  /**
   * The value under key, or undefined when the session has none: `GET /session/data/{key}`.
   *
   * @example
   * const language = (await session.get<string>('language')) ?? 'en';
   */
  async get<T extends JsonValue = JsonValue>(key: string): Promise<T | undefined> {
    try {
      return (await this.request<{ value: T }>('GET', `/session/data/${encodeURIComponent(key)}`)).value;
    } catch (err) {
      if (err instanceof SessionApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  /**
   * Sets one value (any JSON) with a pooled key: `PUT /session/data/{key}`. Parallel calls are fine.
   *
   * @example
   * await session.set('language', 'de');
   * await Promise.all(items.map((item, i) => session.set(`item${i}`, item)));
   */
  async set(key: string, value: JsonValue): Promise<void> {
    await this.request('PUT', `/session/data/${encodeURIComponent(key)}`, { body: value, csrf: true });
  }

  /**
   * Removes key; false when the session did not have it: `DELETE /session/data/{key}`.
   *
   * @example
   * const removed = await session.delete('cart');
   */
  async delete(key: string): Promise<boolean> {
    try {
      await this.request('DELETE', `/session/data/${encodeURIComponent(key)}`, { csrf: true });
      return true;
    } catch (err) {
      if (err instanceof SessionApiError && err.status === 404) return false;
      throw err;
    }
  }

  /**
   * Merges values into the data; returns the whole session: `PATCH /session`, all or nothing.
   *
   * @example
   * const { data } = await session.merge({ language: 'de', theme: 'dark' });
   */
  merge(values: Record<string, JsonValue>): Promise<SessionView> {
    return this.request<SessionView>('PATCH', '/session', { body: values, csrf: true });
  }

  /**
   * Ends the session and starts an empty one under a new cookie: `POST /session/reset`. Pooled
   * keys belong to the old session and are forgotten.
   *
   * @example
   * await session.reset(); // { user: null, data: {} }
   */
  reset(): Promise<SessionView> {
    return this.request<SessionView>('POST', '/session/reset', { csrf: true, replacesSession: true });
  }

  /**
   * Logs out, keeping the logout fields: `POST /session/logout`. Pooled keys are forgotten.
   *
   * @example
   * const { data } = await session.logout(); // e.g. { language: 'de' }
   */
  logout(): Promise<SessionView> {
    return this.request<SessionView>('POST', '/session/logout', { csrf: true, replacesSession: true });
  }

  /**
   * Keeps the session alive: `POST /session/touch` refreshes its last-seen time now.
   *
   * @example
   * setInterval(() => void session.touch(), 10 * 60_000);
   */
  async touch(): Promise<void> {
    await this.request('POST', '/session/touch');
  }

  /**
   * A one-time key for your own forms or requests (taken out of the pool: it is yours to spend).
   *
   * @example
   * await fetch('/my-backend/order', { method: 'POST', headers: { 'X-Security-Key': await session.securityKey() } });
   */
  async securityKey(): Promise<string> {
    const key = await this.acquire();
    this.held--;
    return key;
  }

  /**
   * The signed-in user's sessions (the devices routes): `GET /session/devices`, most recently seen
   * first; `[]` for a guest.
   *
   * @example
   * for (const d of await session.devices()) console.log(d.current ? 'this device' : d.userAgent, d.lastSeen);
   */
  devices(): Promise<DeviceSession[]> {
    return this.request<{ devices: DeviceSession[] }>('GET', '/session/devices').then((r) => r.devices);
  }

  /**
   * Ends another session of the same user by its device id: `DELETE /session/devices/{id}`. Rejects
   * with 404 `not_found` for an unknown id and 400 `current_session` for this session (use logout()).
   *
   * @example
   * await session.endDevice(device.id);
   */
  async endDevice(id: string): Promise<void> {
    await this.request('DELETE', `/session/devices/${encodeURIComponent(id)}`, { csrf: true });
  }

  /**
   * Ends every other session of the user; resolves with how many ended. This session keeps its cookie.
   *
   * @example
   * const ended = await session.logoutOthers(); // e.g. 2
   */
  logoutOthers(): Promise<number> {
    return this.request<{ ended: number }>('POST', '/session/devices/logout-others', { csrf: true }).then((r) => r.ended);
  }

  /**
   * Forget every pooled key, e.g. after your backend logged this session in. The next user an
   * answer shows is then taken as the new one, without a `sessionended` event.
   *
   * @example
   * await fetch('/my-backend/login', { method: 'POST', body: form, credentials: 'include' });
   * session.forgetKeys();
   */
  forgetKeys(): void {
    this.dropKeys();
    // The session was replaced on purpose: its next user is no news (no sessionended).
    this.lastUser = undefined;
  }

  /**
   * Listens for `sessionended` (SessionEndedEvent) with its type, or for any other event.
   *
   * @example
   * session.addEventListener('sessionended', (e) => console.log(e.reason, e.previousUser, e.user));
   */
  override addEventListener<K extends keyof SessionClientEventMap>(
    type: K,
    listener: ((event: SessionClientEventMap[K]) => void) | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
  }

  /**
   * Removes a listener added with addEventListener.
   *
   * @example
   * session.removeEventListener('sessionended', onEnded);
   */
  override removeEventListener<K extends keyof SessionClientEventMap>(
    type: K,
    listener: ((event: SessionClientEventMap[K]) => void) | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener, options);
  }

  private dropKeys(): void {
    this.generation++;
    this.held -= this.pool.length;
    this.pool = [];
  }

  /**
   * Watches every answer for the end of the session underneath the page: a 409 `session_ended`, or
   * a session view whose user is not the one seen last. A request that replaces the session on
   * purpose only records the user its answer shows.
   */
  private observe(answer: Answer, options: RequestOptions): void {
    if (answer.error?.code === 'session_ended') {
      this.ended('session_ended', undefined);
      return;
    }
    if (answer.error) return;
    const user = userOf(answer.body);
    if (user === undefined) return;
    if (options.replacesSession) this.lastUser = user;
    else if (this.lastUser !== undefined && user !== this.lastUser) this.ended('user_changed', user);
    else this.lastUser = user;
  }

  private ended(reason: SessionEndReason, user: string | null | undefined): void {
    const previousUser = this.lastUser;
    this.dropKeys();
    this.lastUser = user;
    this.dispatchEvent(new SessionEndedEvent(reason, previousUser, user));
  }

  /**
   * Any route of the API (or of your own backend on the same base URL). With `csrf`, a pooled key
   * goes along, the fresh key of the answer goes back into the pool, and a 403 `csrf` is retried
   * once with a freshly fetched key. Resolves with the parsed JSON body (undefined for 204).
   *
   * @example
   * const { valid } = await session.request<{ valid: boolean }>('POST', '/session/static-security-key/validate', { body: { key } });
   */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    if (!options.csrf) {
      const answer = await this.send(method, path, options, undefined);
      if (options.replacesSession && !answer.error) this.forgetKeys();
      this.observe(answer, options);
      if (answer.error) throw answer.error;
      return answer.body as T;
    }
    for (let attempt = 0; ; attempt++) {
      const key = await this.acquire();
      let answer: Answer;
      try {
        answer = await this.send(method, path, options, key);
      } catch (err) {
        // No answer: whether the key was spent is unknown, so it is not reused.
        this.held--;
        this.serveWaiters();
        throw err;
      }
      this.settle(answer, key, options);
      this.observe(answer, options);
      if (answer.error?.code === 'csrf' && attempt === 0) continue;
      if (answer.error) throw answer.error;
      return answer.body as T;
    }
  }

  private async send(method: string, path: string, options: RequestOptions, key: string | undefined): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (key !== undefined) headers[KEY_HEADER] = key;
    const res = await this.fetchImpl(this.baseUrl + path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: this.credentials,
    });
    const staticKey = res.headers.get(STATIC_KEY_HEADER);
    if (staticKey) this.lastStaticKey = staticKey;
    const text = await res.text();
    let body: unknown = undefined;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const fresh = res.headers.get(KEY_HEADER);
    if (res.ok) return { status: res.status, body, fresh };
    const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const code = typeof error?.code === 'string' ? error.code : 'http_error';
    const message = typeof error?.message === 'string' ? error.message : `${method} ${path}: HTTP ${res.status}`;
    return { status: res.status, body, fresh, error: new SessionApiError(res.status, code, message) };
  }

  /** After an answer to a request that spent `key`: which keys are still good. */
  private settle(answer: Answer, key: string, options: RequestOptions): void {
    if (options.replacesSession && !answer.error) this.forgetKeys();
    if (answer.fresh) {
      // The spent key was replaced by the fresh one, in the same commit.
      this.release(answer.fresh);
    } else if (answer.error && answer.status >= 400 && answer.status < 500 && answer.error.code !== 'csrf' && answer.status !== 409) {
      // Refused before or inside the transaction, which then wrote nothing: the key is unspent.
      this.release(key);
    } else {
      this.held--;
      if (answer.error?.code === 'csrf') this.dropKeys();
      this.serveWaiters();
    }
  }

  /** A held key is free again: to the next waiter, else to the pool. */
  private release(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(key);
    else this.pool.push(key);
  }

  private acquire(): Promise<string> {
    // Oldest first: those are the ones the server drops first when another tab fetches keys.
    const pooled = this.pool.shift();
    if (pooled !== undefined) return Promise.resolve(pooled);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.serveWaiters();
    });
  }

  /**
   * Fetches keys for the waiting requests, once every caller of this turn has queued, so ten
   * parallel writes cost one key request, not ten (and, on a new session, start one session).
   */
  private serveWaiters(): void {
    if (this.refillScheduled || this.waiters.length === 0) return;
    this.refillScheduled = true;
    queueMicrotask(() => {
      this.refillScheduled = false;
      void this.refill();
    });
  }

  private async refill(): Promise<void> {
    const wanted = Math.max(this.waiters.length, this.prefetch);
    // maxKeys is the only bound: it is meant to match the server's SESSION_MAX_SECURITY_KEYS (1–100),
    // which is also its ceiling for one request's `?count=`.
    const count = Math.min(wanted, this.maxKeys - this.held);
    // Every key is out with a request in flight; one comes back with each answer.
    if (count <= 0) return;
    this.held += count;
    const generation = this.generation;
    let keys: string[];
    try {
      const answer = await this.send('GET', `/session/security-key?count=${count}`, {}, undefined);
      if (answer.error) throw answer.error;
      keys = (answer.body as { securityKeys: string[] }).securityKeys;
    } catch (err) {
      this.held -= count;
      for (const waiter of this.waiters.splice(0)) waiter.reject(err);
      return;
    }
    if (generation !== this.generation) {
      // The session was replaced while these were being fetched: they are worthless now.
      this.held -= count;
      this.serveWaiters();
      return;
    }
    for (const key of keys) this.release(key);
    this.serveWaiters();
  }
}

/** The user of a session view (`{ user, data }`: GET and PATCH /session, reset, logout, login); undefined for any other body. */
function userOf(body: unknown): string | null | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const { user, data } = body as { user?: unknown; data?: unknown };
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return undefined;
  return user === null || typeof user === 'string' ? user : undefined;
}

interface Answer {
  status: number;
  body: unknown;
  fresh: string | null;
  error?: SessionApiError;
}
