import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Server } from 'node:http';
import request from 'supertest';
import { createLocalAdmin, type LocalAdmin } from '../../scripts/localAdmin';
import { createRuntime, setRuntime, type Runtime } from '../../lib/setup/runtime';
import type { SessionStore } from '../../lib/store/sessionStore';
import { datastoreStore, testConfig, uniqueNamespace } from './fixtures';
import { sessionApiDocument, watchServer, type Watch } from './openapi';

export const ADMIN_EMAIL = 'backend@session-test.iam.gserviceaccount.com';
/** supertest's requests arrive with Host 127.0.0.1:<port>; the API's default audience is that origin. */
export const AUDIENCE = 'https://session-api.test';

export interface ApiHarness {
  server: Server;
  admin: LocalAdmin;
  runtime: Runtime;
  store: SessionStore;
  /** Every answer of `server`, validated against docs/openapi.yaml (test/support/openapi.ts). */
  openapi: Watch;
  /** Swaps the runtime the function uses (configuration variants, failing stores). */
  use(env?: Record<string, string>, store?: SessionStore): Runtime;
}

/** The watches of the servers this test file started (startApi). */
const watches: Watch[] = [];

/** The problems the watched servers' answers had since the last call, as one error. */
function reportOpenApiProblems(): void {
  const problems = watches.flatMap((w) => w.take());
  if (problems.length > 0) {
    throw new Error(`${problems.length} answer(s) of sessionApi do not match docs/openapi.yaml:\n${problems.join('\n')}`);
  }
}

// Every answer a test gets from the harness's server is checked against docs/openapi.yaml: a
// mismatch fails the test that got it (or, for an answer still in flight, the file). With
// OPENAPI_COUNT_FILE set, each file appends how many answers it validated.
if (typeof afterEach === 'function' && typeof afterAll === 'function') {
  afterEach(reportOpenApiProblems);
  afterAll(() => {
    const file = process.env.OPENAPI_COUNT_FILE;
    const validated = watches.reduce((n, w) => n + w.validated, 0);
    if (file && watches.length > 0) appendFileSync(file, `${basename(expect.getState().testPath ?? '?')}\t${validated}\n`);
    reportOpenApiProblems();
  });
}

/**
 * Loads the module that registers the functions (as functions-framework does) and wraps
 * `sessionApi` in the framework's own test server. The store is the Datastore emulator unless a
 * test swaps it. Every answer the server sends is validated against docs/openapi.yaml.
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
  const server = getTestServer('sessionApi');
  const openapi = watchServer(server, sessionApiDocument());
  watches.push(openapi);
  const harness: ApiHarness = {
    server,
    openapi,
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
