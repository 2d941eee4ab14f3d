import type { JsonValue } from '../../../lib/core/json';
import { HttpError } from '../../http/errors';
import type { Route } from '../pipeline';
import { jsonBody, keyCount, keyParam, stringField } from '../request';
import { sessionView, valueView } from '../views';

/** The routes a page uses on its own session: read, change, keys, reset, logout. */
export const sessionRoutes: Route[] = [
  {
    template: '/session',
    pattern: /^\/session$/,
    methods: {
      GET: { mode: 'read', plan: () => (s) => ({ status: 200, body: sessionView(s) }) },
      PATCH: {
        mode: 'write',
        csrf: true,
        plan: (ctx) => {
          const values = jsonBody(ctx, 'object') as Record<string, JsonValue>;
          return (s) => {
            s.mergeParsed(values);
            return { status: 200, body: sessionView(s) };
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
            return { status: 200, body: { key, value: valueView(s, key) } };
          };
        },
      },
      PUT: {
        mode: 'write',
        csrf: true,
        plan: (ctx) => {
          const key = keyParam(ctx);
          const value = jsonBody(ctx, 'value') as JsonValue;
          return (s) => {
            s.setParsed(key, value);
            return { status: 200, body: { key, value } };
          };
        },
      },
      DELETE: {
        mode: 'write',
        csrf: true,
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
        plan: () => (s) => {
          s.reset();
          return { status: 200, body: sessionView(s) };
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
        // A write from the same site only: minting keys evicts the oldest held ones, so a cross-site
        // link could make the victim's next writes fail.
        mode: 'write',
        csrf: false,
        plan: (ctx) => {
          const count = keyCount(ctx);
          return (s) =>
            count === 0
              ? { status: 200, body: { securityKey: s.getSecurityKey() } }
              : { status: 200, body: { securityKeys: s.getSecurityKeys(count) } };
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
  {
    template: '/session/logout',
    pattern: /^\/session\/logout$/,
    methods: {
      POST: {
        mode: 'write',
        csrf: true,
        plan: () => (s) => {
          s.logout();
          return { status: 200, body: sessionView(s) };
        },
        // A fresh key would store a guest session even when the logout keeps nothing (ViUR's
        // logout writes nothing then); a client fetches a key when it needs one.
        noFreshKey: true,
      },
    },
  },
];
