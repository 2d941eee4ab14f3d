import type { JsonValue } from '../../../lib/core/json';
import { ViurCsrfError, type ViurDraft, type ViurOutcome, type ViurSessions } from '../../../lib/viur/sessions';
import { createViurSessions } from '../../../lib/viur/runtime';
import type { Runtime } from '../../../lib/setup/runtime';
import { HttpError, sendJson } from '../../http/errors';
import { assertSameSite, type Context, ONE_TIME_KEY_HEADER, type Route, STATIC_KEY_HEADER, STATIC_KEY_REQUEST_HEADERS } from '../pipeline';
import { jsonBody, keyCount, keyParam, stringField } from '../request';
import { adminRoutes } from './admin';

/**
 * The session routes in viur format (SESSION_FORMAT=viur): the same paths, bodies and CSRF rules
 * as native, on a ViUR app's own entities and cookie (lib/viur/sessions.ts, docs/viur.md). Login
 * and the device routes answer 404 `not_in_viur_format`: logging in is the ViUR app's job, and a
 * ViUR session keeps nothing a device list could show.
 */

/** One ViurSessions per runtime (tests swap runtimes; a process has one). */
const perRuntime = new WeakMap<Runtime, ViurSessions>();

/**
 * The viur-format session layer of this runtime, built on first use from its configuration, clock
 * and randomness.
 *
 * @example
 * const { view } = await viurSessions(ctx.rt).read(ctx.req.get('cookie'));
 */
export function viurSessions(rt: Runtime): ViurSessions {
  let v = perRuntime.get(rt);
  if (!v) {
    v = createViurSessions(rt.config, { clock: rt.clock, random: rt.random });
    perRuntime.set(rt, v);
  }
  return v;
}

function applyViurOutcome(ctx: Context, outcome: ViurOutcome): void {
  if (outcome.setCookie) ctx.res.append('Set-Cookie', outcome.setCookie);
  if (outcome.staticSecurityKey) ctx.res.setHeader(STATIC_KEY_HEADER, outcome.staticSecurityKey);
}

function reply(ctx: Context, status: number, body?: unknown): void {
  if (body === undefined) ctx.res.status(status).end();
  else sendJson(ctx.res, status, body);
}

/** The static keys the request carries, in the headers native accepts. */
function staticKeys(ctx: Context): string[] {
  return STATIC_KEY_REQUEST_HEADERS.map((h) => ctx.req.get(h)).filter((v): v is string => v !== undefined);
}

/**
 * A change from the same site, after the CSRF check (a one-time key is consumed, a fresh one
 * answered in X-Security-Key; or the static key), in one transaction.
 */
async function csrfChange<T>(ctx: Context, change: (draft: ViurDraft) => T, freshKey = true): Promise<T> {
  assertSameSite(ctx);
  const viur = viurSessions(ctx.rt);
  const { result, outcome, keys } = await viur.change(
    ctx.req.get('cookie'),
    { oneTimeKey: ctx.req.get(ONE_TIME_KEY_HEADER), staticKeys: staticKeys(ctx) },
    change,
    { mintKeys: (_r, consumed) => (consumed && freshKey ? 1 : 0) },
  );
  applyViurOutcome(ctx, outcome);
  if (keys[0]) ctx.res.setHeader(ONE_TIME_KEY_HEADER, keys[0]);
  return result;
}

function csrfRefused(err: unknown): never {
  if (err instanceof ViurCsrfError) {
    throw new HttpError(
      403,
      'csrf',
      `a valid ${ONE_TIME_KEY_HEADER} header or static key (${STATIC_KEY_REQUEST_HEADERS.join(', ')}) is required`,
    );
  }
  throw err;
}

const notInViurFormat = (what: string) => (): never => {
  throw new HttpError(404, 'not_in_viur_format', `${what} in viur format (SESSION_FORMAT=viur)`);
};

const LOGIN = notInViurFormat('there is no login here: the ViUR app logs its users in');
const DEVICES = notInViurFormat('there are no device routes: a ViUR session stores no device details');

/** The viur format's routes: the session routes on ViUR's entities, the rest as native or refused. */
export const viurRoutes: Route[] = [
  {
    template: '/session',
    pattern: /^\/session$/,
    methods: {
      GET: {
        mode: 'custom',
        run: async (ctx) => {
          const { view, outcome } = await viurSessions(ctx.rt).read(ctx.req.get('cookie'));
          applyViurOutcome(ctx, outcome);
          reply(ctx, 200, view);
        },
      },
      PATCH: {
        mode: 'custom',
        run: async (ctx) => {
          assertSameSite(ctx);
          const values = jsonBody(ctx, 'object') as Record<string, JsonValue>;
          const view = await csrfChange(ctx, (d) => {
            d.merge(values);
            return d.view();
          }).catch(csrfRefused);
          reply(ctx, 200, view);
        },
      },
    },
  },
  {
    template: '/session/data/{key}',
    pattern: /^\/session\/data\/(?<key>[^/]+)$/,
    methods: {
      GET: {
        mode: 'custom',
        run: async (ctx) => {
          const key = keyParam(ctx);
          const { view, outcome } = await viurSessions(ctx.rt).read(ctx.req.get('cookie'));
          if (!Object.hasOwn(view.data, key)) throw new HttpError(404, 'not_found', 'the session has no such key');
          applyViurOutcome(ctx, outcome);
          reply(ctx, 200, { key, value: view.data[key] });
        },
      },
      PUT: {
        mode: 'custom',
        run: async (ctx) => {
          assertSameSite(ctx);
          const key = keyParam(ctx);
          const value = jsonBody(ctx, 'value') as JsonValue;
          await csrfChange(ctx, (d) => d.set(key, value)).catch(csrfRefused);
          reply(ctx, 200, { key, value });
        },
      },
      DELETE: {
        mode: 'custom',
        run: async (ctx) => {
          assertSameSite(ctx);
          const key = keyParam(ctx);
          await csrfChange(ctx, (d) => d.delete(key)).catch(csrfRefused);
          reply(ctx, 204);
        },
      },
    },
  },
  {
    template: '/session/reset',
    pattern: /^\/session\/reset$/,
    methods: {
      POST: {
        mode: 'custom',
        run: async (ctx) => {
          const view = await csrfChange(ctx, (d) => {
            d.reset();
            return d.view();
          }).catch(csrfRefused);
          reply(ctx, 200, view);
        },
      },
    },
  },
  {
    template: '/session/touch',
    pattern: /^\/session\/touch$/,
    methods: {
      POST: {
        mode: 'custom',
        run: async (ctx) => {
          assertSameSite(ctx);
          const { outcome } = await viurSessions(ctx.rt).change(ctx.req.get('cookie'), null, (d) => d.touch());
          applyViurOutcome(ctx, outcome);
          reply(ctx, 204);
        },
      },
    },
  },
  {
    template: '/session/security-key',
    pattern: /^\/session\/security-key$/,
    methods: {
      GET: {
        // Same site only, as native: minting starts a session when there is none (ViUR's create
        // resets an unloaded session, securitykey.py:66-70).
        mode: 'custom',
        run: async (ctx) => {
          assertSameSite(ctx);
          const count = keyCount(ctx);
          const { outcome, keys } = await viurSessions(ctx.rt).change(ctx.req.get('cookie'), null, () => undefined, {
            mintKeys: Math.max(1, count),
          });
          applyViurOutcome(ctx, outcome);
          reply(ctx, 200, count === 0 ? { securityKey: keys[0] } : { securityKeys: keys });
        },
      },
    },
  },
  {
    template: '/session/security-key/validate',
    pattern: /^\/session\/security-key\/validate$/,
    methods: {
      POST: {
        mode: 'custom',
        run: async (ctx) => {
          assertSameSite(ctx);
          const key = stringField(ctx, 'key');
          let valid = true;
          try {
            const { outcome, keys } = await viurSessions(ctx.rt).change(
              ctx.req.get('cookie'),
              { oneTimeKey: key, staticKeys: [] },
              () => undefined,
              { mintKeys: 1 },
            );
            applyViurOutcome(ctx, outcome);
            if (keys[0]) ctx.res.setHeader(ONE_TIME_KEY_HEADER, keys[0]);
          } catch (err) {
            if (!(err instanceof ViurCsrfError)) throw err;
            valid = false;
          }
          reply(ctx, 200, { valid });
        },
      },
    },
  },
  {
    template: '/session/static-security-key/validate',
    pattern: /^\/session\/static-security-key\/validate$/,
    methods: {
      POST: {
        mode: 'custom',
        run: async (ctx) => {
          const key = stringField(ctx, 'key');
          reply(ctx, 200, { valid: await viurSessions(ctx.rt).validateStaticKey(ctx.req.get('cookie'), key) });
        },
      },
    },
  },
  {
    template: '/session/logout',
    pattern: /^\/session\/logout$/,
    methods: {
      POST: {
        mode: 'custom',
        run: async (ctx) => {
          const persistent = ctx.rt.config.session.persistentFieldsOnLogout;
          const view = await csrfChange(
            ctx,
            (d) => {
              d.logout(persistent);
              return d.view();
            },
            false,
          ).catch(csrfRefused);
          reply(ctx, 200, view);
        },
      },
    },
  },
  { template: '/session/login', pattern: /^\/session\/login$/, methods: { POST: { mode: 'custom', run: LOGIN } } },
  { template: '/session/devices', pattern: /^\/session\/devices$/, methods: { GET: { mode: 'custom', run: DEVICES } } },
  {
    template: '/session/devices/logout-others',
    pattern: /^\/session\/devices\/logout-others$/,
    methods: { POST: { mode: 'custom', run: DEVICES } },
  },
  {
    template: '/session/devices/{id}',
    pattern: /^\/session\/devices\/(?<id>[^/]+)$/,
    methods: { DELETE: { mode: 'custom', run: DEVICES } },
  },
  ...adminRoutes,
];
