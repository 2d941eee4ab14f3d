/**
 * Express middleware (`viur-session-functions/express`, Express 4 and 5, or any Connect-style
 * stack): `app.use(session({ sessions }))` puts the library's Session on `req.session` and saves it
 * before the response goes out; `csrf()` guards a route with the one-time key. It uses only Node's
 * own request and response (no import of express, so no dependency on either major), and the
 * response methods every framework on `node:http` ends up calling (writeHead, write, end).
 *
 * How a request goes:
 * - session() loads the session named by the Cookie header (one lookup) before the next handler;
 *   a store outage answers 503 (`store_unavailable`, Retry-After: 1), a cookie of a session
 *   rotated away moments ago 409 (`session_ended`), both as `{ error: { code, message } }`.
 * - csrf(), on a changing method (anything but GET, HEAD, OPTIONS), checks the X-Security-Key
 *   header (consumed) or the static key inside one transaction (SessionManager.withSession) and
 *   issues the fresh key (X-Security-Key on the answer) in the same commit, BEFORE the handler runs:
 *   of two requests with one key, exactly one gets through; a refused key answers 403 `csrf` and
 *   the handler never runs. It then reads the session again for the handler (one more lookup).
 * - When the handler starts its answer (the first write, end or flushHeaders), the answer is held
 *   back, the session saved (SessionManager.save: merged into what is stored, in a transaction),
 *   the session cookie appended to the app's own Set-Cookie headers (never replacing them), and the
 *   answer let through. A failed save answers instead: 503 for an outage, 409 when the session was
 *   ended meanwhile (a kill, a logout elsewhere), the SessionError's status otherwise, none of the
 *   handler's headers or body. Changes made to req.session after the answer started are not saved.
 *
 * req.session is the library's Session: get/set/delete/merge, `reset()` (express-session's
 * regenerate: a new id, no data) and `logout()` (destroy: a new guest session keeping the logout
 * fields), `login(user)`, `getSecurityKey()` for forms. docs/middleware.md is the guide.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { SessionError, StoreUnavailableError } from '../core/errors';
import type { RequestInfo, SessionManager } from '../core/manager';
import type { SaveOutcome, Session } from '../core/session';
import { errorName, log } from '../setup/log';
import { ViurCsrfError, type ViurSessions, type ViurSessionView } from '../viur/sessions';

/** The header a one-time key travels in: sent by the client, and the fresh key in the answer. */
export const SECURITY_KEY_HEADER = 'X-Security-Key';
/** The answer header a newly created static key is revealed in (once), as the session API sends it. */
export const STATIC_KEY_HEADER = 'Sec-X-ViUR-StaticSKey';
/** Where a request may carry the static key, as the session API reads it (a page script can set only the last). */
export const STATIC_KEY_REQUEST_HEADERS = ['Sec-X-ViUR-StaticSKey', 'Sec-X-ViUR-StaticSessionKey', 'X-Static-Security-Key'] as const;

/** A middleware as Express (4 and 5) and Connect call it; typed on Node's own request and response. */
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** A request after session() ran: what `sessionOf(req)` returns is also on `req.session`. */
export type SessionRequest<R extends IncomingMessage = IncomingMessage> = R & { session: Session };

/** Options of session(). */
export interface SessionMiddlewareOptions {
  /** The manager: `createRuntime(loadConfig()).sessions`, or a SessionManager on a store of your own. */
  sessions: SessionManager;
  /**
   * Told of every failure the middleware answers itself (503, 409, 403 on a conflicting key, 500),
   * after the answer was sent, for your log. Default: one log line (lib/setup/log), no ids or keys.
   */
  onError?: (err: unknown, req: IncomingMessage) => void;
}

/** Options of csrf(). */
export interface CsrfOptions {
  /** Methods that need no key. Default GET, HEAD and OPTIONS: every other method is guarded. */
  safeMethods?: readonly string[];
  /** Accept the session's static key (not consumed) as well as a one-time key. Default true, as the session API does. */
  staticKey?: boolean;
}

/** What the middleware keeps per request, between session(), csrf() and the save. */
interface State {
  sessions: SessionManager;
  session: Session;
  info: RequestInfo;
  onError: (err: unknown, req: IncomingMessage) => void;
  /** Set-Cookie of csrf()'s commit (a persistent cookie's refresh), sent unless the final save sends one. */
  pendingCookie: string | null;
  /**
   * The answer's headers when the handler got the request (those of the middleware before it, CORS
   * say, and csrf()'s fresh key, which is committed): what a failed save's answer keeps.
   */
  baseHeaders: OutgoingHttpHeaders;
  /** csrf() issued a fresh key (for the session as it was before the handler). */
  keyIssued: boolean;
  /** The answer was refused before the handler: nothing to save. */
  skipSave: boolean;
  /** The answer has started: the session is being saved, or was. */
  started: boolean;
}

const states = new WeakMap<IncomingMessage, State>();
const SAFE_METHODS = ['GET', 'HEAD', 'OPTIONS'];

/**
 * The session middleware: loads the session for every request and saves it before the answer is
 * sent. Put it before your routes (and before csrf()).
 *
 * @example
 * import express from 'express';
 * import { createRuntime, loadConfig } from 'viur-session-functions';
 * import { csrf, session, sessionOf } from 'viur-session-functions/express';
 *
 * const { sessions } = createRuntime(loadConfig());
 * const app = express();
 * app.use(session({ sessions }));
 * app.get('/', (req, res) => {
 *   const s = sessionOf(req); // or req.session
 *   s.set('visits', s.get<number>('visits', 0) + 1);
 *   res.json({ visits: s.get('visits'), key: s.getSecurityKey() });
 * });
 * app.post('/cart', express.json(), csrf(), (req, res) => {
 *   sessionOf(req).set('cart', req.body);
 *   res.status(204).end();
 * });
 */
export function session(options: SessionMiddlewareOptions): Middleware {
  const { sessions } = options;
  const onError = options.onError ?? logFailure;
  return (req, res, next) => {
    if (states.has(req)) return next();
    const info: RequestInfo = { userAgent: req.headers['user-agent'] };
    sessions.load(req.headers.cookie, info).then(
      (loaded) => {
        const state: State = {
          sessions,
          session: loaded,
          info,
          onError,
          pendingCookie: null,
          baseHeaders: res.getHeaders(),
          keyIssued: false,
          skipSave: false,
          started: false,
        };
        states.set(req, state);
        (req as SessionRequest).session = loaded;
        holdAnswer(req, res, state);
        next();
      },
      (err: unknown) => {
        if (!(err instanceof SessionError)) return next(err);
        answerError(res, err);
        onError(err, req);
      },
    );
  };
}

/**
 * The CSRF guard: on a changing method, the request must carry a valid one-time key
 * (X-Security-Key, consumed) or the static key; checked and consumed in one transaction before the
 * handler runs, with the fresh key issued in the same commit and sent back in X-Security-Key. A
 * missing or spent key answers 403 `{ error: { code: 'csrf' } }` and the handler does not run. It
 * needs session() before it, and nothing may change req.session between the two.
 *
 * @example
 * app.use(session({ sessions }));
 * app.use(csrf()); // every POST, PUT, PATCH, DELETE of the app
 * // or per route: app.post('/order', csrf(), placeOrder);
 */
export function csrf(options: CsrfOptions = {}): Middleware {
  const safe = new Set((options.safeMethods ?? SAFE_METHODS).map((m) => m.toUpperCase()));
  const acceptStatic = options.staticKey ?? true;
  return (req, res, next) => {
    const state = states.get(req);
    if (!state) return next(new Error('csrf() needs session() before it'));
    if (safe.has((req.method ?? 'GET').toUpperCase())) return next();
    if (state.started) return next(new Error('csrf() must run before the answer starts'));
    if (state.session.operations.length > 0 || state.session.forced) {
      return next(new Error('csrf() must run before anything changes req.session'));
    }
    const oneTime = header(req, SECURITY_KEY_HEADER);
    const statics = acceptStatic ? STATIC_KEY_REQUEST_HEADERS.map((h) => header(req, h)).filter((k) => k !== undefined) : [];
    void (async () => {
      const { result, outcome } = await state.sessions.withSession(
        req.headers.cookie,
        (s): { ok: boolean; fresh: string | null } => {
          if (oneTime !== undefined && s.validateSecurityKey(oneTime)) return { ok: true, fresh: s.getSecurityKey() };
          if (statics.some((k) => s.validateStaticSecurityKey(k))) return { ok: true, fresh: null };
          return { ok: false, fresh: null };
        },
        state.info,
      );
      if (!result.ok) {
        state.skipSave = true;
        const names = [SECURITY_KEY_HEADER, ...(acceptStatic ? STATIC_KEY_REQUEST_HEADERS : [])].join(', ');
        sendJson(res, 403, { error: { code: 'csrf', message: `a valid ${names} header is required` } });
        return;
      }
      state.pendingCookie = outcome.setCookie;
      if (result.fresh) res.setHeader(SECURITY_KEY_HEADER, result.fresh);
      state.keyIssued = result.fresh !== null;
      // The handler gets the session as committed: the consumed key is not replayed by the final save.
      state.session = await state.sessions.load(req.headers.cookie, state.info);
      (req as SessionRequest).session = state.session;
      state.baseHeaders = res.getHeaders();
      next();
    })().catch((err: unknown) => {
      if (!(err instanceof SessionError)) return next(err);
      state.skipSave = true;
      answerError(res, err);
      state.onError(err, req);
    });
  };
}

/**
 * The session session() loaded for this request (also `req.session`), typed without declaration
 * merging. Throws when session() did not run for it.
 *
 * @example
 * app.get('/language', (req, res) => res.json({ language: sessionOf(req).get<string>('language', 'en') }));
 */
export function sessionOf(req: IncomingMessage): Session {
  const state = states.get(req);
  if (!state) throw new Error('no session on this request: app.use(session({ sessions })) must run before this handler');
  return state.session;
}

/** Options of viurSession() and viurCsrf(). */
export interface ViurMiddlewareOptions {
  /** The ViUR app's sessions: `createViurSessions(loadConfig())` with SESSION_FORMAT=viur. */
  viur: ViurSessions;
  /** Methods viurCsrf() lets through without a key. Default GET, HEAD and OPTIONS. */
  safeMethods?: readonly string[];
}

/** A request after viurSession() ran: the ViUR app's session as `{user, data}` (docs/viur.md). */
export type ViurSessionRequest<R extends IncomingMessage = IncomingMessage> = R & { viurSession: ViurSessionView };

/**
 * viur format: puts the ViUR app's session named by the Cookie header on `req.viurSession` as
 * `{user, data}` (ViurSessions.read: one lookup, a refresh of `lastseen` when ViUR's would, the
 * cookie sent again or cleared as that read says). Read-only: change the session with
 * `viur.change()`, which commits at once. A store outage answers 503 `store_unavailable`.
 *
 * @example
 * const viur = createViurSessions(loadConfig());
 * app.use(viurSession({ viur }));
 * app.get('/me', (req, res) => res.json(viurSessionOf(req))); // { user, data }
 */
export function viurSession(options: ViurMiddlewareOptions): Middleware {
  return (req, res, next) => {
    options.viur.read(req.headers.cookie).then(
      ({ view, outcome }) => {
        if (outcome.setCookie) res.appendHeader('Set-Cookie', outcome.setCookie);
        (req as ViurSessionRequest).viurSession = view;
        next();
      },
      (err: unknown) => (err instanceof SessionError ? answerError(res, err) : next(err)),
    );
  };
}

/**
 * The ViUR session viurSession() put on this request (also `req.viurSession`), typed without
 * declaration merging. Throws when viurSession() did not run for it.
 *
 * @example
 * app.get('/me', (req, res) => res.json(viurSessionOf(req))); // { user: 'ahBz…', data: { language: 'de' } }
 */
export function viurSessionOf(req: IncomingMessage): ViurSessionView {
  const view = (req as Partial<ViurSessionRequest>).viurSession;
  if (!view) throw new Error('no ViUR session on this request: app.use(viurSession({ viur })) must run before this handler');
  return view;
}

/**
 * viur format: guards changing methods with ViUR's CSRF proof before the handler runs: a one-time
 * key in X-Security-Key (deleted, then checked for expiry and binding to this session, as ViUR's
 * securitykey.validate does; a fresh one is answered in X-Security-Key) or the session's static key
 * (the STATIC_KEY_REQUEST_HEADERS, compared in constant time). Otherwise 403 `csrf` and the handler
 * never runs. One transaction.
 *
 * @example
 * app.post('/order', viurCsrf({ viur }), placeOrder);
 */
export function viurCsrf(options: ViurMiddlewareOptions): Middleware {
  const safe = new Set((options.safeMethods ?? SAFE_METHODS).map((m) => m.toUpperCase()));
  return (req, res, next) => {
    if (safe.has((req.method ?? 'GET').toUpperCase())) return next();
    const proof = {
      oneTimeKey: header(req, SECURITY_KEY_HEADER),
      staticKeys: STATIC_KEY_REQUEST_HEADERS.map((h) => header(req, h)).filter((k) => k !== undefined),
    };
    options.viur
      .change(req.headers.cookie, proof, () => undefined, { mintKeys: (_r, consumed) => (consumed ? 1 : 0) })
      .then(
        ({ outcome, keys }) => {
          if (outcome.setCookie) res.appendHeader('Set-Cookie', outcome.setCookie);
          if (keys[0]) res.setHeader(SECURITY_KEY_HEADER, keys[0]);
          next();
        },
        (err: unknown) => {
          if (err instanceof ViurCsrfError) {
            const names = [SECURITY_KEY_HEADER, ...STATIC_KEY_REQUEST_HEADERS].join(', ');
            sendJson(res, 403, { error: { code: 'csrf', message: `a valid ${names} header is required` } });
          } else if (err instanceof SessionError) answerError(res, err);
          else next(err);
        },
      );
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

type WriteHeadArgs = [
  statusCode: number,
  statusMessage?: string | OutgoingHttpHeaders | unknown[],
  headers?: OutgoingHttpHeaders | unknown[],
];
type Loose = (...args: unknown[]) => unknown;
type Call = { kind: 'write' | 'end'; args: unknown[] } | { kind: 'flushHeaders' };

/**
 * Holds the answer back from its first byte until the session is saved: writeHead's status and
 * headers are recorded (and applied later, so that the session cookie is appended after the app's
 * own), write/end/flushHeaders are queued. The wrappers stay in place afterwards and call through,
 * so a middleware that wrapped them in turn (compression) keeps working.
 */
function holdAnswer(req: IncomingMessage, res: ServerResponse, state: State): void {
  const original = {
    writeHead: res.writeHead.bind(res) as Loose,
    write: res.write.bind(res) as Loose,
    end: res.end.bind(res) as Loose,
    flushHeaders: res.flushHeaders.bind(res),
  };
  let released = false;
  let head: { statusMessage?: string; headers?: OutgoingHttpHeaders | unknown[] } | undefined;
  const queue: Call[] = [];

  const release = (outcome: SaveOutcome | null) => {
    released = true;
    if (!res.headersSent) {
      if (head?.headers) applyHeaders(res, head.headers);
      const cookie = outcome?.setCookie ?? state.pendingCookie;
      if (cookie) res.appendHeader('Set-Cookie', cookie);
      if (outcome?.staticSecurityKey) res.setHeader(STATIC_KEY_HEADER, outcome.staticSecurityKey);
      if (head) original.writeHead(res.statusCode, ...(head.statusMessage === undefined ? [] : [head.statusMessage]));
    }
    for (const call of queue) {
      if (call.kind === 'flushHeaders') original.flushHeaders();
      else original[call.kind](...call.args);
    }
  };

  const fail = (err: unknown) => {
    released = true;
    failAnswer(res, state, err);
    // Whoever waits on a queued write hears of the failure; the body itself is dropped.
    for (const call of queue) {
      if (call.kind === 'flushHeaders') continue;
      const cb = call.args.find((a) => typeof a === 'function') as ((e?: unknown) => void) | undefined;
      if (cb) process.nextTick(cb, err);
    }
    state.onError(err, req);
  };

  const start = () => {
    if (state.started) return;
    state.started = true;
    if (state.skipSave) return release(null);
    // The handler rotated the session (login, logout, reset): the guard's fresh key belongs to the
    // old one, so the new session gets its own, in the same save (as the session API's routes do).
    if (state.keyIssued && state.session.operations.some((op) => op.type === 'reset')) {
      res.setHeader(SECURITY_KEY_HEADER, state.session.getSecurityKey());
    }
    state.sessions.save(state.session).then(release, fail);
  };

  res.writeHead = function writeHead(this: ServerResponse, ...args: WriteHeadArgs) {
    if (released) return original.writeHead(...args);
    const [statusCode, second, third] = args;
    this.statusCode = statusCode;
    head = typeof second === 'string' ? { statusMessage: second, headers: third } : { headers: second as OutgoingHttpHeaders | unknown[] };
    return this;
  } as ServerResponse['writeHead'];
  res.write = function write(this: ServerResponse, ...args: unknown[]) {
    if (released) return original.write(...args) as boolean;
    queue.push({ kind: 'write', args });
    start();
    return true;
  } as ServerResponse['write'];
  res.end = function end(this: ServerResponse, ...args: unknown[]) {
    if (released) return original.end(...args) as ServerResponse;
    queue.push({ kind: 'end', args });
    start();
    return this;
  } as ServerResponse['end'];
  res.flushHeaders = function flushHeaders(this: ServerResponse) {
    if (released) return original.flushHeaders();
    queue.push({ kind: 'flushHeaders' });
    start();
  };
}

/** writeHead's headers argument, as Node applies it next to setHeader()'s: an object replaces, a flat array adds. */
function applyHeaders(res: ServerResponse, headers: OutgoingHttpHeaders | unknown[]): void {
  if (!Array.isArray(headers)) {
    for (const [name, value] of Object.entries(headers)) if (value !== undefined) res.setHeader(name, value);
    return;
  }
  if (headers.length > 0 && Array.isArray(headers[0])) {
    for (const pair of headers as Array<[string, string | string[]]>) res.setHeader(pair[0], pair[1]);
    return;
  }
  for (let i = 0; i < headers.length; i += 2) res.removeHeader(String(headers[i]));
  for (let i = 0; i < headers.length; i += 2) res.appendHeader(String(headers[i]), headers[i + 1] as string | string[]);
}

/**
 * The answer to a failed save, in place of the handler's: none of the handler's headers (its
 * cookies included: error answers carry no Set-Cookie), only those it was handed (baseHeaders).
 */
function failAnswer(res: ServerResponse, state: State, err: unknown): void {
  if (res.headersSent) {
    // Sent around the middleware (a writeHead captured before session() ran): nothing to replace.
    res.destroy(err instanceof Error ? err : undefined);
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  for (const [name, value] of Object.entries(state.baseHeaders))
    if (name !== 'set-cookie' && value !== undefined) res.setHeader(name, value);
  answerError(res, err);
}

/** `{ error: { code, message } }` with the SessionError's status (503 with Retry-After: 1 for an outage), else 500. */
function answerError(res: ServerResponse, err: unknown): void {
  const known = err instanceof SessionError;
  const status = known ? err.status : 500;
  const body = known
    ? { error: { code: err.code, message: err.message } }
    : { error: { code: 'internal', message: 'the session could not be saved' } };
  if (err instanceof StoreUnavailableError) res.setHeader('Retry-After', '1');
  sendJson(res, status, body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(JSON.stringify(body));
}

function logFailure(err: unknown, req: IncomingMessage): void {
  const code = err instanceof SessionError ? err.code : 'internal';
  // A client's conflict (an ended session, a spent key, a limit) is no fault of the service.
  const severity = err instanceof StoreUnavailableError ? 'WARNING' : err instanceof SessionError && err.status < 500 ? 'INFO' : 'ERROR';
  log(severity, 'session middleware answered with an error', { code, error: errorName(err), method: req.method });
}
