import type { Request, Response } from '@google-cloud/functions-framework';
import type { RequestInfo, WithSessionOptions } from '../../lib/core/manager';
import type { SaveOutcome, Session } from '../../lib/core/session';
import type { Runtime } from '../../lib/setup/runtime';
import { HttpError, sendJson } from '../http/errors';

/**
 * The request pipeline of sessionApi: how a route touches the session (read, write, custom), the
 * checks every changing request passes (same site, CSRF key) and how an outcome becomes headers.
 * Route tables (routes/) describe endpoints; this module runs them.
 */

/** The response header a newly created static key is revealed in (ViUR's name). */
export const STATIC_KEY_HEADER = 'Sec-X-ViUR-StaticSKey';
/**
 * Where a request may carry the static key: ours, ViUR's current name, and one a page script can
 * set (browsers refuse scripts any request header that starts with `Sec-`).
 */
export const STATIC_KEY_REQUEST_HEADERS = [STATIC_KEY_HEADER, 'Sec-X-ViUR-StaticSessionKey', 'X-Static-Security-Key'];
/** The header a one-time key travels in: sent by the client, and the fresh key in the answer. */
export const ONE_TIME_KEY_HEADER = 'X-Security-Key';

type BodyRequest = Request & { jsonBody?: boolean };

/** One request as the endpoints see it. */
export interface Context {
  req: BodyRequest;
  res: Response;
  rt: Runtime;
  params: Record<string, string>;
}

/** What an endpoint answers: the status and, unless it is empty, a JSON body. */
export interface Reply {
  status: number;
  body?: unknown;
}

type Apply = (session: Session) => Reply;

/** A write plan's result after its query: what to do with the session, and other sessions to end in the same commit. */
export interface Prepared {
  apply: Apply;
  end?: WithSessionOptions['end'];
}

/**
 * Checks everything about the request itself (body, key, query) before the store is touched, and
 * returns what to do with the session once it is loaded; or, for a change that needs a query first
 * (the device routes), a promise of that plus the other sessions to end in the same commit.
 */
type Plan = (ctx: Context) => Apply | Promise<Prepared>;

/** How a route touches the session. */
export type Endpoint =
  /** Reads; one lookup, a write only when lastseen is due for a refresh. */
  | { mode: 'read'; plan: (ctx: Context) => (session: Session) => Reply | Promise<Reply> }
  /**
   * Changes atomically with the read (withSession), from the same site only; `csrf` demands a
   * security key first.
   */
  | { mode: 'write'; csrf: boolean; plan: Plan; freshKey?: (result: Reply) => boolean; noFreshKey?: true }
  /** Everything else: health, privileged routes. */
  | { mode: 'custom'; run: (ctx: Context) => Promise<void> | void };

/** One path of the API: its template (for logs), its anchored pattern and an endpoint per method. */
export interface Route {
  template: string;
  pattern: RegExp;
  methods: Partial<Record<string, Endpoint>>;
}

/**
 * The first route whose pattern matches `path`, with its named parameters (still percent-encoded).
 *
 * @example
 * match(ROUTES, '/session/data/cart%20items'); // { route: <the /session/data/{key} route>, params: { key: 'cart%20items' } }
 */
export function match(routes: readonly Route[], path: string): { route: Route; params: Record<string, string> } | null {
  for (const route of routes) {
    const m = route.pattern.exec(path);
    if (m) return { route, params: { ...m.groups } };
  }
  return null;
}

/**
 * What the library stores of the request (the User-Agent of a session it starts).
 *
 * @example
 * const session = await ctx.rt.sessions.load(ctx.req.get('cookie'), requestInfo(ctx));
 */
export function requestInfo(ctx: Context): RequestInfo {
  return { userAgent: ctx.req.get('user-agent') };
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
 * What `Sec-Fetch-Site` may say on a change without `Origin`: the page itself, or the user (a typed
 * URL, a bookmark). `same-site` is refused too: a sibling subdomain (another origin, possibly
 * another owner) is no more trusted than another site, and its `<img>` or link would carry the
 * cookie. Without the header at all the client is no browser (a backend, curl) or an old one.
 */
const SAME_ORIGIN_FETCH_SITES: ReadonlySet<string> = new Set(['same-origin', 'none']);

/**
 * The same origin (scheme, host and port: http://<own host> is another origin of an https service),
 * or one configured as allowed (403 `cross_site` otherwise; every change checks it, in both formats). Without `Origin` (browsers omit it on GETs and navigations), only
 * what browsers mark `same-origin` or `none` passes, or a request without the mark.
 */
export function assertSameSite(ctx: Context): void {
  const origin = ctx.req.get('origin');
  const allowed = ctx.rt.config.allowedOrigins;
  if (origin !== undefined) {
    const theirs = originOf(origin);
    if (!(theirs !== null && (theirs === ownOrigin(ctx) || allowed.includes(theirs)))) {
      throw new HttpError(403, 'cross_site', 'only this origin or an allowed one may change a session');
    }
    return;
  }
  const fetchSite = ctx.req.get('sec-fetch-site');
  if (fetchSite !== undefined && !SAME_ORIGIN_FETCH_SITES.has(fetchSite)) {
    throw new HttpError(403, 'cross_site', 'only this origin or an allowed one may change a session');
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
  throw new HttpError(
    403,
    'csrf',
    `a valid ${ONE_TIME_KEY_HEADER} header or static key (${STATIC_KEY_REQUEST_HEADERS.join(', ')}) is required`,
  );
}

/**
 * The cookie and static key a save produced, as response headers (Set-Cookie is appended, never
 * overwritten).
 *
 * @example
 * const { outcome } = await ctx.rt.sessions.withSession(ctx.req.get('cookie'), (s) => s.login(user));
 * applyOutcome(ctx.res, outcome);
 */
export function applyOutcome(res: Response, outcome: SaveOutcome): void {
  if (outcome.setCookie) res.append('Set-Cookie', outcome.setCookie);
  if (outcome.staticSecurityKey) res.setHeader(STATIC_KEY_HEADER, outcome.staticSecurityKey);
}

function send(res: Response, reply: Reply): void {
  if (reply.body === undefined) res.status(reply.status).end();
  else sendJson(res, reply.status, reply.body);
}

async function runWrite(ctx: Context, endpoint: Extract<Endpoint, { mode: 'write' }>): Promise<void> {
  assertSameSite(ctx);
  const planned = await endpoint.plan(ctx);
  const { apply, end } = typeof planned === 'function' ? { apply: planned, end: undefined } : planned;
  const { result, outcome } = await ctx.rt.sessions.withSession(
    ctx.req.get('cookie'),
    (session) => {
      const consumed = endpoint.csrf ? checkSecurityKey(ctx, session) : false;
      const reply = apply(session);
      // A consumed key is replaced in the same commit, so a client can go on posting.
      const wantsKey = consumed || (endpoint.freshKey?.(reply) ?? false);
      const fresh = !endpoint.noFreshKey && wantsKey ? session.getSecurityKey() : null;
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

/**
 * Runs one endpoint; its failures are thrown, for the entry point's one error path. A read loads
 * and saves the session around its plan; a write checks the site (and the CSRF key) and runs in
 * withSession, handing a fresh one-time key back; a custom endpoint runs as it is.
 *
 * @example
 * await runEndpoint({ req, res, rt: runtime(), params: found.params }, found.route.methods.GET!);
 */
export async function runEndpoint(ctx: Context, endpoint: Endpoint): Promise<void> {
  if (endpoint.mode === 'read') await runRead(ctx, endpoint);
  else if (endpoint.mode === 'write') await runWrite(ctx, endpoint);
  else await endpoint.run(ctx);
}
