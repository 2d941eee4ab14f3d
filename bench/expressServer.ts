/**
 * The baseline of the request-path benchmark: what a Node user picks today for sessions in
 * Datastore. express-session with @google-cloud/connect-datastore, configured as their docs
 * recommend (resave: false, saveUninitialized: false; the store gets a Datastore client), serving
 * the same two routes the benchmark drives on sessionApi: read the session, set one value.
 * Environment: PORT, GOOGLE_CLOUD_PROJECT, DATASTORE_EMULATOR_HOST, BENCH_NAMESPACE.
 */
import { Datastore } from '@google-cloud/datastore';
import { DatastoreStore } from '@google-cloud/connect-datastore';
import express from 'express';
import session from 'express-session';

declare module 'express-session' {
  interface SessionData {
    data: Record<string, unknown>;
  }
}

/** The app; exported so that expressFunction.ts can run the very same one under functions-framework. */
export function createApp(): express.Express {
  const app = express();
  app.use(
    session({
      store: new DatastoreStore({
        kind: 'express-sessions',
        // The same idle lifetime as sessionApi's default (checked on read, as ours is).
        expirationMs: 3600 * 1000,
        dataset: new Datastore({ projectId: process.env.GOOGLE_CLOUD_PROJECT, namespace: process.env.BENCH_NAMESPACE }),
      }),
      secret: 'bench-secret-not-a-secret',
      resave: false,
      saveUninitialized: false,
    }),
  );

  app.get('/session', (req, res) => {
    res.set('Cache-Control', 'no-store').json({ data: req.session.data ?? {} });
  });

  app.put('/session/data/:key', express.json({ strict: false }), (req, res) => {
    const key = String(req.params.key);
    req.session.data = { ...(req.session.data ?? {}), [key]: req.body as unknown };
    res.set('Cache-Control', 'no-store').json({ key, value: req.body as unknown });
  });

  // The size curve fills each session with one merge, as PATCH /session does on ours.
  app.patch('/session', express.json({ limit: '2mb' }), (req, res) => {
    req.session.data = { ...(req.session.data ?? {}), ...(req.body as Record<string, unknown>) };
    res.set('Cache-Control', 'no-store').json({ ok: true });
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  return app;
}

if (require.main === module) {
  const server = createApp().listen(Number(process.env.PORT ?? 8080), '127.0.0.1');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
