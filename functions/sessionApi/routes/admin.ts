import { userIdProblem } from '../../../lib/core/user';
import { killMessageData, type KillTarget, MalformedKillMessageError, parseIssuedAt } from '../../../lib/jobs/killMessage';
import { publisherFor } from '../../../lib/jobs/killPublisher';
import type { Runtime } from '../../../lib/setup/runtime';
import { KeyPathError, viurUser } from '../../../lib/viur/userKey';
import { AdminVerifier } from '../../http/adminAuth';
import { HttpError, sendJson } from '../../http/errors';
import { applyOutcome, type Context, requestInfo, type Route } from '../pipeline';
import { jsonBody, pathParam, stringField } from '../request';
import { sessionView, userSessionView } from '../views';
import { noSuchSession } from './devices';

/**
 * The privileged routes, for backends with a Google ID token of an allowed principal: login, kill,
 * and any user's sessions.
 */

/** One verifier per admin configuration, so that its certificate cache lives as long as the process. */
const verifiers = new WeakMap<Runtime['config']['admin'], AdminVerifier>();

async function requireAdmin(ctx: Context): Promise<void> {
  const admin = ctx.rt.config.admin;
  let verifier = verifiers.get(admin);
  if (!verifier) {
    verifier = new AdminVerifier(admin);
    verifiers.set(admin, verifier);
  }
  await verifier.verify(ctx.req.get('authorization'));
}

/** The `{user}` of a privileged route, percent-decoded; the same rules as a login's user id. */
function userParam(ctx: Context): string {
  const user = pathParam(ctx, 'user');
  const problem = userIdProblem(user);
  if (problem !== null) throw new HttpError(400, 'invalid_user', problem);
  return user;
}

/**
 * In `viur` format the app owns login and has no device records: these routes answer 404 with a
 * JSON error saying so (docs/viur-kill-cleanup.md#the-api-in-viur-format).
 */
function nativeOnly(ctx: Context, what: string): void {
  if (ctx.rt.config.format === 'viur') {
    throw new HttpError(404, 'not_in_viur_format', `${what} is not available with SESSION_FORMAT=viur: ${VIUR_REASONS[what]}`);
  }
}

const VIUR_REASONS: Record<string, string> = {
  'listing a user’s sessions': 'ViUR stores no devices (no creation time, no user agent)',
  'ending one session of a user': 'ViUR stores no devices; kill the user’s sessions with POST /sessions/kill',
};

async function login(ctx: Context): Promise<void> {
  await requireAdmin(ctx);
  const user = stringField(ctx, 'user');
  const { session, outcome } = await ctx.rt.sessions.withSession(ctx.req.get('cookie'), (s) => s.login(user), requestInfo(ctx));
  applyOutcome(ctx.res, outcome);
  sendJson(ctx.res, 200, sessionView(session));
}

const KILL_USAGE = 'the body must be {"user": "<id>" | "__guest__" | null} or {"users": [...]}, with an optional "issuedAt"';

/** The kill target and time of a POST /sessions/kill body, checked with the consumer's rules. */
function killRequest(body: Record<string, unknown>): { target: KillTarget; issuedAt: Date | undefined } {
  const { issuedAt: issuedAtText, ...rest } = body;
  const keys = Object.keys(rest);
  if (keys.length !== 1 || !(keys[0] === 'user' || keys[0] === 'users')) throw new HttpError(400, 'bad_request', KILL_USAGE);
  if (issuedAtText !== undefined && typeof issuedAtText !== 'string') throw new HttpError(400, 'bad_request', KILL_USAGE);
  const named = 'user' in rest ? [rest.user] : Array.isArray(rest.users) ? (rest.users as unknown[]) : [];
  if (named.some((u) => typeof u === 'string' && !u.isWellFormed())) {
    // Such an id could never be stored or queried (Datastore needs valid UTF-8): the same answer as login's.
    throw new HttpError(400, 'invalid_user', 'a user id must be well-formed unicode (no lone surrogate)');
  }
  try {
    const issuedAt = issuedAtText === undefined ? undefined : parseIssuedAt(issuedAtText);
    const target: KillTarget = 'user' in rest ? { user: rest.user as string | null } : { users: rest.users as string[] };
    killMessageData(target, issuedAt);
    return { target, issuedAt };
  } catch (err) {
    if (err instanceof MalformedKillMessageError) throw new HttpError(400, 'bad_request', err.message);
    throw err;
  }
}

/** In `viur` format a key path must convert to ViUR's user string (the kill function would drop it otherwise). */
function checkViurTarget(ctx: Context, target: KillTarget): void {
  if (ctx.rt.config.format !== 'viur') return;
  const { projectId, namespace } = ctx.rt.config;
  try {
    for (const user of 'users' in target ? target.users : [target.user]) viurUser(user, { projectId, namespace });
  } catch (err) {
    if (err instanceof KeyPathError) throw new HttpError(400, 'invalid_user', err.message);
    throw err;
  }
}

async function kill(ctx: Context): Promise<void> {
  await requireAdmin(ctx);
  const { target, issuedAt } = killRequest(jsonBody(ctx, 'object') as Record<string, unknown>);
  checkViurTarget(ctx, target);
  let messageId: string;
  try {
    // The publisher loads the Pub/Sub client on its first use, here: the rest of the API never needs it.
    messageId = await publisherFor(ctx.rt.config).publishKill(target, { issuedAt });
  } catch (err) {
    const unavailable = new HttpError(503, 'publish_unavailable', 'the kill message could not be published; nothing was sent', {
      'Retry-After': '1',
    });
    throw Object.assign(unavailable, { cause: err });
  }
  sendJson(ctx.res, 202, { messageId });
}

/** The privileged routes: POST /session/login, POST /sessions/kill, GET and DELETE /users/{user}/sessions[/{id}]. */
export const adminRoutes: Route[] = [
  { template: '/session/login', pattern: /^\/session\/login$/, methods: { POST: { mode: 'custom', run: login } } },
  { template: '/sessions/kill', pattern: /^\/sessions\/kill$/, methods: { POST: { mode: 'custom', run: kill } } },
  {
    template: '/users/{user}/sessions',
    pattern: /^\/users\/(?<user>[^/]+)\/sessions$/,
    methods: {
      GET: {
        mode: 'custom',
        run: async (ctx) => {
          await requireAdmin(ctx);
          nativeOnly(ctx, 'listing a user’s sessions');
          const devices = await ctx.rt.sessions.listSessions(userParam(ctx));
          sendJson(ctx.res, 200, { sessions: devices.map(userSessionView) });
        },
      },
    },
  },
  {
    template: '/users/{user}/sessions/{id}',
    pattern: /^\/users\/(?<user>[^/]+)\/sessions\/(?<id>[^/]+)$/,
    methods: {
      DELETE: {
        mode: 'custom',
        run: async (ctx) => {
          await requireAdmin(ctx);
          nativeOnly(ctx, 'ending one session of a user');
          if (!(await ctx.rt.sessions.endSession(userParam(ctx), pathParam(ctx, 'id'), { reason: 'admin' }))) throw noSuchSession();
          ctx.res.status(204).end();
        },
      },
    },
  },
];
