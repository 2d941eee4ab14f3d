import type { Request, Response } from '@google-cloud/functions-framework';
import { assertValidKey, type JsonValue } from '../lib/core/json';
import { killMessageData, type KillTarget, MalformedKillMessageError, parseIssuedAt } from '../lib/jobs/killMessage';
import { publisherFor } from '../lib/jobs/killPublisher';
import { runtime, type Runtime } from '../lib/setup/runtime';
import type { RequestInfo, SaveOutcome, Session, WithSessionOptions } from '../lib/core/session';
import { AdminVerifier } from './http/adminAuth';
import { answerOptions, applyCors } from './http/cors';
import { deviceRoutes } from './sessionApi/routes/devices';
import { failureCause, HttpError, sendError, sendJson, toHttpError } from './http/errors';
import { logRequest } from './http/requestLog';

/**
 * The session API: a thin adapter that parses the request, calls the session library, and maps
 * its typed errors to HTTP. Reads cost one Datastore lookup; changes one lookup and one commit.
 */

const STATIC_KEY_HEADER = 'Sec-X-ViUR-StaticSKey';
/**
 * Where a request may carry the static key: ours, ViUR's current name, and one a page script can
 * set (browsers refuse scripts any request header that starts with `Sec-`).
 */
const STATIC_KEY_REQUEST_HEADERS = [STATIC_KEY_HEADER, 'Sec-X-ViUR-StaticSessionKey', 'X-Static-Security-Key'];
const ONE_TIME_KEY_HEADER = 'X-Security-Key';

type BodyRequest = Request & { jsonBody?: boolean };

export interface Context {
  req: BodyRequest;
  res: Response;
  rt: Runtime;
  params: Record<string, string>;
}

/** How a route touches the session. */
export type Endpoint =
  /** Reads; one lookup, a write only when lastseen is due for a refresh. */
  | { mode: 'read'; plan: (ctx: Context) => (session: Session) => Reply | Promise<Reply> }
  /** Changes atomically with the read (withSession); `csrf` demands a security key first. */
  | { mode: 'write'; csrf: boolean; browser: boolean; plan: Plan; freshKey?: (result: Reply) => boolean; noFreshKey?: true }
  /** Everything else: health, privileged routes. */
  | { mode: 'custom'; run: (ctx: Context) => Promise<void> | void };

/**
 * Checks everything about the request itself (body, key, query) before the store is touched, and
 * returns what to do with the session once it is loaded; or, for a change that needs a query first
 * (the device routes), a promise of that plus the other sessions to end in the same commit.
 */
type Plan = (ctx: Context) => Apply | Promise<Prepared>;
type Apply = (session: Session) => Reply;
export interface Prepared {
  apply: Apply;
  end?: WithSessionOptions['end'];
}

export interface Reply {
  status: number;
  body?: unknown;
}

export interface Route {
  template: string;
  pattern: RegExp;
  methods: Partial<Record<string, Endpoint>>;
}

function view(session: Session): { user: string | null; data: Record<string, JsonValue> } {
  return { user: session.user, data: session.toObject() };
}

function jsonBody(ctx: Context, what: 'object' | 'value'): unknown {
  if (!ctx.req.jsonBody) throw new HttpError(415, 'unsupported_media_type', 'the body must be application/json');
  const body: unknown = ctx.req.body;
  if (body === undefined) throw new HttpError(400, 'bad_request', 'a JSON body is required');
  if (what === 'object' && (typeof body !== 'object' || body === null || Array.isArray(body))) {
    throw new HttpError(400, 'bad_request', 'the body must be a JSON object');
  }
  return body;
}

function stringField(ctx: Context, field: string): string {
  const value = (jsonBody(ctx, 'object') as Record<string, unknown>)[field];
  if (typeof value !== 'string') throw new HttpError(400, 'bad_request', `"${field}" must be a string`);
  return value;
}

function keyParam(ctx: Context): string {
  let key: string;
  try {
    key = decodeURIComponent(ctx.params.key!);
  } catch {
    throw new HttpError(400, 'invalid_key', 'the key is not valid percent-encoding');
  }
  assertValidKey(key);
  return key;
}

function keyCount(ctx: Context): number {
  const raw = ctx.req.query.count;
  if (raw === undefined) return 0;
  const max = ctx.rt.config.session.maxSecurityKeys;
  const n = typeof raw === 'string' && /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= max)) throw new HttpError(400, 'bad_request', `count must be an integer from 1 to ${max}`);
  return n;
}

function originOf(url: string): string | null {
  try {
    const origin = new URL(url).origin;
    return origin === 'null' ? null : origin;
  } catch {
    return null;
  }
}

/**
 * This service's own origin: scheme, host and port. The scheme is X-Forwarded-Proto's (set by
 * Google's front end, which terminates TLS) when present, else the connection's own.
 */
function ownOrigin(ctx: Context): string | null {
  const forwarded = ctx.req.get('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
  const scheme = forwarded || ((ctx.req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http');
  const host = ctx.req.get('x-forwarded-host') ?? ctx.req.get('host');
  if (!host || (scheme !== 'http' && scheme !== 'https') || /[/\\@?#]/.test(host)) return null;
  return originOf(`${scheme}://${host}`);
}

/**
 * The same origin (scheme, host and port: http://<own host> is another origin of an https service),
 * or one configured as allowed; requests browsers mark as cross-site are refused.
 */
function assertSameSite(ctx: Context): void {
  const origin = ctx.req.get('origin');
  const allowed = ctx.rt.config.allowedOrigins;
  if (origin !== undefined) {
    const theirs = originOf(origin);
    if (!(theirs !== null && (theirs === ownOrigin(ctx) || allowed.includes(theirs)))) {
      throw new HttpError(403, 'cross_site', 'cross-site requests may not change a session');
    }
    return;
  }
  if (ctx.req.get('sec-fetch-site') === 'cross-site') {
    throw new HttpError(403, 'cross_site', 'cross-site requests may not change a session');
  }
}

/** A one-time key (consumed) or the static key; otherwise 403 and, inside the transaction, nothing is written. */
function checkSecurityKey(ctx: Context, session: Session): boolean {
  const oneTime = ctx.req.get(ONE_TIME_KEY_HEADER);
  if (oneTime !== undefined && session.validateSecurityKey(oneTime)) return true;
  for (const header of STATIC_KEY_REQUEST_HEADERS) {
    const staticKey = ctx.req.get(header);
    if (staticKey !== undefined && session.validateStaticSecurityKey(staticKey)) return false;
  }
  throw new HttpError(403, 'csrf', `a valid ${ONE_TIME_KEY_HEADER} header or static key (${STATIC_KEY_REQUEST_HEADERS.join(', ')}) is required`);
}

function applyOutcome(res: Response, outcome: SaveOutcome): void {
  if (outcome.setCookie) res.append('Set-Cookie', outcome.setCookie);
  if (outcome.staticSecurityKey) res.setHeader(STATIC_KEY_HEADER, outcome.staticSecurityKey);
}

function send(res: Response, reply: Reply): void {
  if (reply.body === undefined) res.status(reply.status).end();
  else sendJson(res, reply.status, reply.body);
}

/** One verifier per admin configuration, so that its certificate cache lives as long as the process. */
const verifiers = new WeakMap<Runtime['config']['admin'], AdminVerifier>();

/** What the library stores of the request (the User-Agent of a session it starts). */
export function requestInfo(ctx: Context): RequestInfo {
  return { userAgent: ctx.req.get('user-agent') };
}

async function requireAdmin(ctx: Context): Promise<void> {
  const admin = ctx.rt.config.admin;
  let verifier = verifiers.get(admin);
  if (!verifier) {
    verifier = new AdminVerifier(admin);
    verifiers.set(admin, verifier);
  }
  await verifier.verify(ctx.req.get('authorization'));
}

async function runWrite(ctx: Context, endpoint: Extract<Endpoint, { mode: 'write' }>): Promise<void> {
  if (endpoint.browser) assertSameSite(ctx);
  const planned = await endpoint.plan(ctx);
  const { apply, end } = typeof planned === 'function' ? { apply: planned, end: undefined } : planned;
  const { result, outcome } = await ctx.rt.sessions.withSession(
    ctx.req.get('cookie'),
    (session) => {
      const consumed = endpoint.csrf ? checkSecurityKey(ctx, session) : false;
      const reply = apply(session);
      // A consumed key is replaced in the same commit, so a client can go on posting.
      const fresh = !endpoint.noFreshKey && (consumed || (endpoint.freshKey?.(reply) ?? false)) ? session.getSecurityKey() : null;
      return { reply, fresh };
    },
    { ...requestInfo(ctx), end },
  );
  applyOutcome(ctx.res, outcome);
  if (result.fresh) ctx.res.setHeader(ONE_TIME_KEY_HEADER, result.fresh);
  send(ctx.res, result.reply);
}

async function runRead(ctx: Context, endpoint: Extract<Endpoint, { mode: 'read' }>): Promise<void> {
  const apply = endpoint.plan(ctx);
  const session = await ctx.rt.sessions.load(ctx.req.get('cookie'), requestInfo(ctx));
  const reply = await apply(session);
  applyOutcome(ctx.res, await ctx.rt.sessions.save(session));
  send(ctx.res, reply);
}

async function kill(ctx: Context): Promise<void> {
  await requireAdmin(ctx);
  const body = jsonBody(ctx, 'object') as Record<string, unknown>;
  const usage = 'the body must be {"user": "<id>" | "__guest__" | null} or {"users": [...]}, with an optional "issuedAt"';
  const { issuedAt: issuedAtText, ...rest } = body;
  const keys = Object.keys(rest);
  if (keys.length !== 1 || !(keys[0] === 'user' || keys[0] === 'users')) throw new HttpError(400, 'bad_request', usage);
  if (issuedAtText !== undefined && typeof issuedAtText !== 'string') throw new HttpError(400, 'bad_request', usage);
  const named = 'user' in rest ? [rest.user] : Array.isArray(rest.users) ? (rest.users as unknown[]) : [];
  if (named.some((u) => typeof u === 'string' && !u.isWellFormed())) {
    // Such an id could never be stored or queried (Datastore needs valid UTF-8): the same answer as login's.
    throw new HttpError(400, 'invalid_user', 'a user id must be well-formed unicode (no lone surrogate)');
  }
  let target: KillTarget;
  let issuedAt: Date | undefined;
  try {
    issuedAt = issuedAtText === undefined ? undefined : parseIssuedAt(issuedAtText);
    target = 'user' in rest ? { user: rest.user as string | null } : { users: rest.users as string[] };
    // The consumer's rules, checked before anything is sent.
    killMessageData(target, issuedAt);
  } catch (err) {
    if (err instanceof MalformedKillMessageError) throw new HttpError(400, 'bad_request', err.message);
    throw err;
  }
  let messageId: string;
  try {
    // The publisher loads the Pub/Sub client on its first use, here: the rest of the API never needs it.
    messageId = await publisherFor(ctx.rt.config).publishKill(target, { issuedAt });
  } catch (err) {
    const unavailable = new HttpError(503, 'publish_unavailable', 'the kill message could not be published; nothing was sent', { 'Retry-After': '1' });
    throw Object.assign(unavailable, { cause: err });
  }
  sendJson(ctx.res, 202, { messageId });
}

async function login(ctx: Context): Promise<void> {
  await requireAdmin(ctx);
  const user = stringField(ctx, 'user');
  const { session, outcome } = await ctx.rt.sessions.withSession(ctx.req.get('cookie'), (s) => s.login(user), requestInfo(ctx));
  applyOutcome(ctx.res, outcome);
  sendJson(ctx.res, 200, view(session));
}

const ROUTES: Route[] = [
  { template: '/healthz', pattern: /^\/healthz$/, methods: { GET: { mode: 'custom', run: ({ res }) => sendJson(res, 200, { status: 'ok' }) } } },
  {
    template: '/session',
    pattern: /^\/session$/,
    methods: {
      GET: { mode: 'read', plan: () => (s) => ({ status: 200, body: view(s) }) },
      PATCH: {
        mode: 'write',
        csrf: true,
        browser: true,
        plan: (ctx) => {
          const values = jsonBody(ctx, 'object') as Record<string, JsonValue>;
          return (s) => {
            s.merge(values);
            return { status: 200, body: view(s) };
          };
        },
      },
    },
  },
  {
    template: '/session/data/{key}',
    pattern: /^\/session\/data\/(?<key>[^/]+)$/,
    methods: {
      GET: {
        mode: 'read',
        plan: (ctx) => {
          const key = keyParam(ctx);
          return (s) => {
            if (!s.has(key)) throw new HttpError(404, 'not_found', 'the session has no such key');
            return { status: 200, body: { key, value: s.get(key) } };
          };
        },
      },
      PUT: {
        mode: 'write',
        csrf: true,
        browser: true,
        plan: (ctx) => {
          const key = keyParam(ctx);
          const value = jsonBody(ctx, 'value') as JsonValue;
          return (s) => {
            s.set(key, value);
            return { status: 200, body: { key, value } };
          };
        },
      },
      DELETE: {
        mode: 'write',
        csrf: true,
        browser: true,
        plan: (ctx) => {
          const key = keyParam(ctx);
          return (s) => {
            s.delete(key);
            return { status: 204 };
          };
        },
      },
    },
  },
  {
    template: '/session/reset',
    pattern: /^\/session\/reset$/,
    methods: {
      POST: {
        mode: 'write',
        csrf: true,
        browser: true,
        plan: () => (s) => {
          s.reset();
          return { status: 200, body: view(s) };
        },
      },
    },
  },
  {
    template: '/session/touch',
    pattern: /^\/session\/touch$/,
    methods: {
      POST: {
        mode: 'write',
        csrf: false,
        browser: true,
        plan: () => (s) => {
          s.markChanged();
          return { status: 204 };
        },
      },
    },
  },
  {
    template: '/session/security-key',
    pattern: /^\/session\/security-key$/,
    methods: {
      GET: {
        mode: 'write',
        csrf: false,
        // Minting keys evicts the oldest held ones: a cross-site link could make the victim's next writes fail.
        browser: true,
        plan: (ctx) => {
          const count = keyCount(ctx);
          return (s) => (count === 0 ? { status: 200, body: { securityKey: s.getSecurityKey() } } : { status: 200, body: { securityKeys: s.getSecurityKeys(count) } });
        },
      },
    },
  },
  {
    template: '/session/security-key/validate',
    pattern: /^\/session\/security-key\/validate$/,
    methods: {
      POST: {
        mode: 'write',
        csrf: false,
        browser: true,
        plan: (ctx) => {
          const key = stringField(ctx, 'key');
          return (s) => ({ status: 200, body: { valid: s.validateSecurityKey(key) } });
        },
        freshKey: (reply) => (reply.body as { valid: boolean }).valid,
      },
    },
  },
  {
    template: '/session/static-security-key/validate',
    pattern: /^\/session\/static-security-key\/validate$/,
    methods: {
      POST: {
        mode: 'read',
        plan: (ctx) => {
          const key = stringField(ctx, 'key');
          return (s) => ({ status: 200, body: { valid: s.validateStaticSecurityKey(key) } });
        },
      },
    },
  },
  { template: '/session/login', pattern: /^\/session\/login$/, methods: { POST: { mode: 'custom', run: login } } },
  {
    template: '/session/logout',
    pattern: /^\/session\/logout$/,
    methods: {
      POST: {
        mode: 'write',
        csrf: true,
        browser: true,
        plan: () => (s) => {
          s.logout();
          return { status: 200, body: view(s) };
        },
        // A fresh key would store a guest session even when the logout keeps nothing (ViUR's
        // logout writes nothing then); a client fetches a key when it needs one.
        noFreshKey: true,
      },
    },
  },
  { template: '/sessions/kill', pattern: /^\/sessions\/kill$/, methods: { POST: { mode: 'custom', run: kill } } },
  ...deviceRoutes(requireAdmin),
];

function match(path: string): { route: Route; params: Record<string, string> } | null {
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (m) return { route, params: { ...m.groups } };
  }
  return null;
}

/**
 * functions-framework runs each HTTP request inside a (deprecated) node:domain, only so that an
 * exception thrown from a callback of the request turns into a 500. While a domain is active, Node
 * tags every promise and callback created with it and enters and leaves it around each one; in the
 * request benchmark (bench/) that was about a fifth of this function's CPU per request. Every error
 * of this handler is a rejected promise it catches itself, so it leaves the domain: the one thing
 * that changes is that a throw from inside a library callback reaches the framework's
 * uncaughtException handler (a 500, then the instance is ended and replaced) instead of answering
 * this request with a 500 while the process runs on in an unknown state.
 */
function leaveFrameworkDomain(): void {
  (process as { domain?: { exit(): void } | null }).domain?.exit();
}

export async function sessionApi(req: Request, res: Response): Promise<void> {
  leaveFrameworkDomain();
  const startedAt = process.hrtime.bigint();
  const rt = runtime();
  const path = req.path.length > 1 ? req.path.replace(/\/+$/, '') : req.path;
  const found = match(path);
  let errorCode: string | undefined;
  let errorCause: string | undefined;
  res.setHeader('Cache-Control', 'no-store');
  applyCors(req, res, rt.config.allowedOrigins);
  try {
    if (!found) throw new HttpError(404, 'not_found', 'no such route');
    // Before any endpoint runs: a preflight never reads or writes a session.
    if (req.method === 'OPTIONS') return answerOptions(req, res, rt.config.allowedOrigins, Object.keys(found.route.methods));
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const endpoint = found.route.methods[method];
    if (!endpoint) {
      throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here`, { Allow: Object.keys(found.route.methods).join(', ') });
    }
    const ctx: Context = { req, res, rt, params: found.params };
    if (endpoint.mode === 'read') await runRead(ctx, endpoint);
    else if (endpoint.mode === 'write') await runWrite(ctx, endpoint);
    else await endpoint.run(ctx);
  } catch (err) {
    const httpError = toHttpError(err);
    errorCode = httpError.code;
    errorCause = failureCause(err);
    if (httpError.status === 500) {
      // The stack stays in the log (no request data in it); the client sees only the slug.
      console.error(JSON.stringify({ severity: 'ERROR', message: 'unhandled error in sessionApi', stack: err instanceof Error ? err.stack : String(err) }));
    }
    sendError(res, httpError);
  } finally {
    if (rt.config.logRequests === 'all' || res.statusCode >= 400) {
      logRequest(req, res, found?.route.template ?? 'unknown', startedAt, rt.config.projectId, { errorCode, errorCause }, rt.config.behindGoogleFrontEnd);
    }
  }
}
