import { sendJson } from '../../http/errors';
import type { Route } from '../pipeline';
import { adminRoutes } from './admin';
import { deviceRoutes } from './devices';
import { sessionRoutes } from './session';

/** Every route of sessionApi, by subject. Patterns are anchored and disjoint, so their order only matters within a table. */
export const ROUTES: readonly Route[] = [
  {
    template: '/healthz',
    pattern: /^\/healthz$/,
    methods: { GET: { mode: 'custom', run: ({ res }) => sendJson(res, 200, { status: 'ok' }) } },
  },
  ...sessionRoutes,
  ...deviceRoutes,
  ...adminRoutes,
];
