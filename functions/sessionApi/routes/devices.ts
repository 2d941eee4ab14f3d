import { HttpError } from '../../http/errors';
import type { Context, Prepared, Reply, Route } from '../pipeline';
import { pathParam } from '../request';
import { deviceView } from '../views';

/**
 * The cookie's user's sessions ("devices"). Ids are handles (lib/core/devices.ts), never session
 * ids. Another user's handle, a dead session's and a made-up one all answer the same 404.
 */

/**
 * The one 404 of the device routes, whatever the reason the handle names nothing of this user.
 *
 * @example
 * if (target === undefined) throw noSuchSession();
 */
export const noSuchSession = (): HttpError => new HttpError(404, 'not_found', 'no such session of this user');

/** A refusal answered as a reply, so that the transaction still commits (and spends the one-time key). */
function refusal(err: HttpError): Reply {
  return { status: err.status, body: { error: { code: err.code, message: err.message } } };
}

/**
 * DELETE /session/devices/{id}: the session is found first by its handle (one lookup, one query,
 * whatever the number of the user's sessions); the CSRF key is then checked and the target ended
 * in the transaction of the cookie's session. A refusal after the key was accepted (404, 400) still
 * commits, so the one-time key is spent and the same request cannot be replayed; a refused key or
 * a failed request ends nothing and consumes nothing.
 */
async function endOne(ctx: Context): Promise<Prepared> {
  const id = pathParam(ctx, 'id');
  const current = await ctx.rt.sessions.load(ctx.req.get('cookie'));
  const user = current.user;
  const target = user === null ? null : await ctx.rt.sessions.findLiveSession(user, id);
  return {
    apply: (s) => {
      if (target === null) return refusal(noSuchSession());
      if (target.key === s.loadedKey)
        return refusal(new HttpError(400, 'current_session', 'this is the current session: use POST /session/logout'));
      return { status: 204 };
    },
    end: user !== null && target !== null && target.key !== current.loadedKey ? { user, keys: [target.key], reason: 'device' } : undefined,
  };
}

/** POST /session/devices/logout-others: one lookup, one query per 500 live sessions, one commit up to 498 others. */
async function endOthers(ctx: Context): Promise<Prepared> {
  const current = await ctx.rt.sessions.load(ctx.req.get('cookie'));
  const user = current.user;
  const others = await ctx.rt.sessions.otherSessionKeys(current);
  return {
    apply: () => ({ status: 200, body: { ended: others.length } }),
    end: user === null ? undefined : { user, keys: others, reason: 'logout_others' },
  };
}

/** The device routes: GET /session/devices, POST /session/devices/logout-others, DELETE /session/devices/{id}. */
export const deviceRoutes: Route[] = [
  {
    template: '/session/devices',
    pattern: /^\/session\/devices$/,
    methods: {
      GET: {
        mode: 'read',
        plan: (ctx) => async (s) => {
          const devices = s.user === null ? [] : await ctx.rt.sessions.listSessions(s.user, s.loadedKey);
          return { status: 200, body: { devices: devices.map(deviceView) } };
        },
      },
    },
  },
  {
    template: '/session/devices/logout-others',
    pattern: /^\/session\/devices\/logout-others$/,
    methods: { POST: { mode: 'write', csrf: true, plan: endOthers } },
  },
  {
    template: '/session/devices/{id}',
    pattern: /^\/session\/devices\/(?<id>[^/]+)$/,
    methods: { DELETE: { mode: 'write', csrf: true, plan: endOne } },
  },
];
