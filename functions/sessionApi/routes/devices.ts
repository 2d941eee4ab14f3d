import type { Device } from '../../../lib/core/devices';
import { deviceHandle, isWellFormedHandle } from '../../../lib/core/devices';
import { GUEST_USER, MAX_USER_BYTES } from '../../../lib/core/session';
import type { Context, Prepared, Route } from '../../sessionApi';
import { HttpError } from '../../http/errors';

/**
 * A user's sessions ("devices"): the browser routes act on the cookie's user, the privileged ones
 * on any user. Ids are handles (lib/core/devices.ts), never session ids. Another user's handle, a
 * dead session's and a made-up one all answer the same 404.
 */

const NOT_FOUND = () => new HttpError(404, 'not_found', 'no such session of this user');

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function deviceBody(d: Device): { id: string; current: boolean; createdAt: string; lastSeen: string; userAgent: string | null } {
  return { id: d.id, current: d.current, createdAt: iso(d.createdAt), lastSeen: iso(d.lastSeen), userAgent: d.userAgent };
}

function decoded(ctx: Context, name: string): string {
  try {
    return decodeURIComponent(ctx.params[name]!);
  } catch {
    throw new HttpError(400, 'bad_request', `the ${name} is not valid percent-encoding`);
  }
}

/** The user of a privileged route, percent-decoded; the same rules as a login's user id. */
function userParam(ctx: Context): string {
  const user = decoded(ctx, 'user');
  if (user.length === 0 || user === GUEST_USER || Buffer.byteLength(user, 'utf8') > MAX_USER_BYTES) {
    throw new HttpError(400, 'invalid_user', `a user id is 1 to ${MAX_USER_BYTES} bytes and not ${GUEST_USER}`);
  }
  return user;
}

/**
 * DELETE /session/devices/{id}: the user's sessions are found first (one lookup, one query); the
 * CSRF key is then checked and the target ended in the transaction of the cookie's session, so a
 * refused or failed request ends nothing and consumes no key.
 */
async function endOne(ctx: Context): Promise<Prepared> {
  const id = decoded(ctx, 'id');
  const current = await ctx.rt.sessions.load(ctx.req.get('cookie'));
  const user = current.user;
  const live = user === null || !isWellFormedHandle(id) ? [] : await ctx.rt.sessions.liveSessions(user);
  const target = live.find((s) => deviceHandle(s.key) === id);
  return {
    apply: (s) => {
      if (target === undefined) throw NOT_FOUND();
      if (target.key === s.loadedKey) throw new HttpError(400, 'current_session', 'this is the current session: use POST /session/logout');
      return { status: 204 };
    },
    end: user !== null && target !== undefined && target.key !== current.loadedKey ? { user, keys: [target.key] } : undefined,
  };
}

/** POST /session/devices/logout-others: one lookup, one query, one commit up to 498 others. */
async function endOthers(ctx: Context): Promise<Prepared> {
  const current = await ctx.rt.sessions.load(ctx.req.get('cookie'));
  const user = current.user;
  const others = user === null ? [] : (await ctx.rt.sessions.liveSessions(user)).map((s) => s.key).filter((k) => k !== current.loadedKey);
  return {
    apply: () => ({ status: 200, body: { ended: others.length } }),
    end: user === null ? undefined : { user, keys: others },
  };
}

export function deviceRoutes(requireAdmin: (ctx: Context) => Promise<void>): Route[] {
  return [
    {
      template: '/session/devices',
      pattern: /^\/session\/devices$/,
      methods: {
        GET: {
          mode: 'read',
          plan: (ctx) => async (s) => {
            const devices = s.user === null ? [] : await ctx.rt.sessions.listSessions(s.user, s.loadedKey);
            return { status: 200, body: { devices: devices.map(deviceBody) } };
          },
        },
      },
    },
    {
      template: '/session/devices/logout-others',
      pattern: /^\/session\/devices\/logout-others$/,
      methods: { POST: { mode: 'write', csrf: true, browser: true, plan: endOthers } },
    },
    {
      template: '/session/devices/{id}',
      pattern: /^\/session\/devices\/(?<id>[^/]+)$/,
      methods: { DELETE: { mode: 'write', csrf: true, browser: true, plan: endOne } },
    },
    {
      template: '/users/{user}/sessions',
      pattern: /^\/users\/(?<user>[^/]+)\/sessions$/,
      methods: {
        GET: {
          mode: 'custom',
          run: async (ctx) => {
            await requireAdmin(ctx);
            const devices = await ctx.rt.sessions.listSessions(userParam(ctx));
            ctx.res.status(200).json({ sessions: devices.map((d) => ({ id: d.id, createdAt: iso(d.createdAt), lastSeen: iso(d.lastSeen), userAgent: d.userAgent })) });
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
            if (!(await ctx.rt.sessions.endSession(userParam(ctx), decoded(ctx, 'id')))) throw NOT_FOUND();
            ctx.res.status(204).end();
          },
        },
      },
    },
  ];
}
