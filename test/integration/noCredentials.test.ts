/**
 * A Datastore-backed API and the kill CLI on a machine with no Google credentials at all (no
 * emulator, no key file, no gcloud login, no metadata server): answers and messages, not a crash.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, type FunctionProcess, ROOT, startFunction } from '../support/functionsFramework';

/** Empty values switch the emulators and key file off for the child (the config and the clients treat '' as unset). */
function noCredentialsEnv(): Record<string, string> {
  const home = mkdtempSync(join(tmpdir(), 'no-credentials-'));
  return {
    DATASTORE_EMULATOR_HOST: '',
    PUBSUB_EMULATOR_HOST: '',
    GOOGLE_APPLICATION_CREDENTIALS: '',
    HOME: home,
    CLOUDSDK_CONFIG: home,
    METADATA_SERVER_DETECTION: 'none',
    GOOGLE_CLOUD_PROJECT: 'session-no-credentials',
    SESSION_STORE: 'datastore',
  };
}

describe('sessionApi on Datastore without credentials', () => {
  let api: FunctionProcess;

  beforeAll(async () => {
    ensureBuilt();
    api = await startFunction('sessionApi', 'http', noCredentialsEnv());
  }, 60_000);

  afterAll(async () => {
    await api?.stop();
  });

  test('says at start what to do, answers 503 with the cause in the log line, and stays up', async () => {
    const startHint = api.logs().find((l) => l.severity === 'WARNING' && /no Google credentials found/.test(l.message ?? ''));
    expect(startHint?.message).toContain('gcloud auth application-default login');
    expect(startHint?.message).toContain('DATASTORE_EMULATOR_HOST');

    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${api.url}/session/security-key`);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toEqual({ error: { code: 'store_unavailable', message: 'the session store is unavailable' } });
    }
    // Each line is written once its answer is sent, so it may reach this pipe a moment later.
    const lines = () => api.logs().filter((l) => l.message === 'GET /session/security-key 503');
    for (let i = 0; i < 100 && lines().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(lines()).toHaveLength(2);
    for (const line of lines())
      expect(line.errorCause).toMatch(
        /^no Google credentials: Could not load the default credentials.*gcloud auth application-default login/,
      );

    // The client's failed stub used to end the process with an unhandled rejection right after the first 503.
    const health = await fetch(`${api.url}/healthz`);
    expect(health.status).toBe(200);
    expect(api.output()).not.toMatch(/Unhandled rejection|Process exited/);
  });
});

test('session-kill without credentials: one friendly line saying what to do, exit 1, no stack', () => {
  ensureBuilt();
  const run = spawnSync(
    process.execPath,
    [join(ROOT, 'dist', 'bin', 'session-kill.js'), '--user', 'alice', '--project', 'session-no-credentials'],
    {
      env: { ...process.env, ...noCredentialsEnv() },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  expect(run.status).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr).toMatch(
    /^session-kill: publishing to session-kill in session-no-credentials failed: no Google credentials: .*gcloud auth application-default login.*\n$/,
  );
  expect(run.stderr).not.toMatch(/\n\s+at /);
});
