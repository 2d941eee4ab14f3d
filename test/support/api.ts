import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import request from 'supertest';
import { createLocalAdmin, type LocalAdmin } from '../../scripts/localAdmin';
import { createRuntime, setRuntime, type Runtime } from '../../lib/setup/runtime';
import type { SessionStore } from '../../lib/store/sessionStore';
import { datastoreStore, testConfig, uniqueNamespace } from './fixtures';

export const ADMIN_EMAIL = 'backend@session-test.iam.gserviceaccount.com';
/** supertest's requests arrive with Host 127.0.0.1:<port>; the API's default audience is that origin. */
export const AUDIENCE = 'https://session-api.test';

export interface ApiHarness {
  server: Server;
  admin: LocalAdmin;
  runtime: Runtime;
  store: SessionStore;
  /** Swaps the runtime the function uses (configuration variants, failing stores). */
  use(env?: Record<string, string>, store?: SessionStore): Runtime;
}

/**
 * Loads the module that registers the functions (as functions-framework does) and wraps
 * `sessionApi` in the framework's own test server. The store is the Datastore emulator unless a
 * test swaps it.
 */
export async function startApi(env: Record<string, string> = {}): Promise<ApiHarness> {
  const admin = createLocalAdmin(mkdtempSync(join(tmpdir(), 'session-admin-')), ADMIN_EMAIL);
  const baseEnv = {
    GOOGLE_CLOUD_PROJECT: 'session-test',
    SESSION_ADMIN_JWKS_FILE: admin.jwksFile,
    SESSION_ADMIN_PRINCIPALS: ADMIN_EMAIL,
    SESSION_ADMIN_AUDIENCE: AUDIENCE,
    SESSION_NAMESPACE: uniqueNamespace('api'),
    ...env,
  };
  Object.assign(process.env, baseEnv);
  await import('../../functions/index');
  const { getTestServer } = await import('@google-cloud/functions-framework/testing');
  const harness: ApiHarness = {
    server: getTestServer('sessionApi'),
    admin,
    runtime: undefined as unknown as Runtime,
    store: undefined as unknown as SessionStore,
    use(extra = {}, store) {
      const config = testConfig({ ...baseEnv, ...extra });
      const s = store ?? datastoreStore(config.namespace);
      const rt = createRuntime(config, { store: s });
      setRuntime(rt);
      harness.runtime = rt;
      harness.store = s;
      return rt;
    },
  };
  harness.use();
  return harness;
}

/** The cookie pair a Set-Cookie response header sets, ready to send back. */
export function cookieOf(res: request.Response): string {
  const header = res.headers['set-cookie'] as unknown as string[] | undefined;
  if (!header?.[0]) throw new Error(`no Set-Cookie in ${res.status} ${JSON.stringify(res.body)}`);
  return header[0].split(';')[0];
}

/** A session with a cookie and one fresh one-time key. */
export async function newSession(server: Server): Promise<{ cookie: string; key: string }> {
  const res = await request(server).get('/session/security-key').expect(200);
  return { cookie: cookieOf(res), key: res.body.securityKey as string };
}
