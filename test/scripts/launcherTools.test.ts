/**
 * The local tools follow the launcher: `npm start` on non-default ports and state directory, then
 * mint-token, cleanup and `session-kill --local` reach exactly that stack; overridden environment
 * is named; a wrong option prints the usage.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../scripts/emulators';
import { ensureBuilt, ROOT } from '../support/functionsFramework';

const DIST = join(ROOT, 'dist');

function tool(script: string, args: string[], env: Record<string, string | undefined>, cwd: string) {
  return spawnSync(process.execPath, [join(DIST, script), ...args], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('npm start on other ports and another state directory', () => {
  let child: ChildProcess;
  let output = '';
  let ports: number[];
  let stateDir: string;
  /** An empty directory, so that nothing is found by accident in a default .local. */
  let elsewhere: string;

  beforeAll(async () => {
    ensureBuilt();
    ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    stateDir = mkdtempSync(join(tmpdir(), 'launcher-state-'));
    elsewhere = mkdtempSync(join(tmpdir(), 'launcher-cwd-'));
    const env: NodeJS.ProcessEnv = { ...process.env, SESSION_STORE: 'datastore', SESSION_ADMIN_PRINCIPALS: 'someone@example.com' };
    for (const name of [
      'DATASTORE_EMULATOR_HOST',
      'PUBSUB_EMULATOR_HOST',
      'GOOGLE_CLOUD_PROJECT',
      'SESSION_NAMESPACE',
      'SESSION_LOCAL_STATE_DIR',
    ])
      delete env[name];
    child = spawn(
      process.execPath,
      [
        join(DIST, 'scripts', 'start.js'),
        '--port',
        `${ports[0]}`,
        '--kill-port',
        `${ports[1]}`,
        '--cleanup-port',
        `${ports[2]}`,
        '--demo-port',
        `${ports[3]}`,
        '--state-dir',
        stateDir,
      ],
      {
        cwd: elsewhere,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    const deadline = Date.now() + 30_000;
    while (!/Ctrl-C stops everything/.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`launcher did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  test('names the environment it overrides and prints export lines for this stack', () => {
    expect(output).toContain('npm start: SESSION_STORE=datastore from the environment is replaced by memory');
    expect(output).toContain('npm start: SESSION_ADMIN_PRINCIPALS=someone@example.com from the environment is replaced by local-admin@');
    expect(output).toContain(`export SESSION_KILL_PUSH_URL=http://localhost:${ports[1]}/projects/session-local/topics/session-kill\n`);
    expect(output).toContain(`export SESSION_LOCAL_STATE_DIR=${stateDir}\n`);
    const state = JSON.parse(readFileSync(join(stateDir, 'launcher.json'), 'utf8')) as Record<string, unknown>;
    expect(state).toMatchObject({
      pid: child.pid,
      apiUrl: `http://localhost:${ports[0]}`,
      audience: `http://localhost:${ports[0]}`,
      cleanupUrl: `http://localhost:${ports[2]}/`,
      store: 'memory',
    });
  });

  test('mint-token, session-kill --local and cleanup reach this stack; JSON answers end with a newline', async () => {
    const api = `http://localhost:${ports[0]}`;
    // Without the state directory the tool says what to do instead of minting for the wrong stack.
    const lost = tool('scripts/mint-token.js', [], { SESSION_LOCAL_STATE_DIR: '' }, elsewhere);
    expect(lost.status).toBe(1);
    expect(lost.stderr).toMatch(/^mint-token: no launcher state in .*launcher\.json: run npm start first/);

    const minted = tool('scripts/mint-token.js', [], { SESSION_LOCAL_STATE_DIR: stateDir }, elsewhere);
    expect(minted.status).toBe(0);
    const token = minted.stdout.trim();
    const keyRes = await fetch(`${api}/session/security-key`);
    const cookie = keyRes.headers.get('set-cookie')!.split(';')[0];
    expect(await keyRes.text()).toMatch(/^\{"securityKey":"[^"]+"\}\n$/);
    const login = await fetch(`${api}/session/login`, {
      method: 'POST',
      headers: { cookie, authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'alice' }),
    });
    expect(login.status).toBe(200);
    const aliceCookie = login.headers.get('set-cookie')!.split(';')[0];
    expect(await (await fetch(`${api}/session`, { headers: { cookie: aliceCookie } })).json()).toEqual({ user: 'alice', data: {} });
    expect(await (await fetch(`${api}/no-such-route`)).text()).toMatch(/^\{"error":\{"code":"not_found","message":"[^"]+"\}\}\n$/);

    const kill = tool(
      'bin/session-kill.js',
      ['--local', '--state-dir', stateDir, '--user', 'alice'],
      { SESSION_KILL_PUSH_URL: '', GOOGLE_CLOUD_PROJECT: '' },
      elsewhere,
    );
    expect(kill.stderr).toBe('');
    expect(kill.status).toBe(0);
    expect(kill.stdout).toMatch(/^local-/);
    // The CLI waits for the push to be delivered, and the kill function answers once the kill is done.
    expect(await (await fetch(`${api}/session`, { headers: { cookie: aliceCookie } })).json()).toEqual({ user: null, data: {} });

    const cleanup = tool('scripts/run-cleanup.js', [], { SESSION_LOCAL_STATE_DIR: stateDir }, elsewhere);
    expect(cleanup.status).toBe(0);
    expect(JSON.parse(cleanup.stdout)).toMatchObject({ done: true });
  });

  test('Ctrl-C removes the state file; the tools then say the launcher is gone', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(existsSync(join(stateDir, 'launcher.json'))).toBe(false);
    const kill = tool('bin/session-kill.js', ['--local', '--state-dir', stateDir, '--user', 'alice'], {}, elsewhere);
    expect(kill.status).toBe(1);
    expect(kill.stderr).toMatch(/^session-kill: --local: no launcher state in .*: run npm start first/);
  });
});

test.each([
  ['an unknown option', ['--prot', '8090'], /^npm start: Unknown option '--prot'/],
  ['a port that is no number', ['--port', 'http'], /^npm start: --port must be a port number/],
  ['a positional argument', ['8090'], /^npm start: Unexpected argument '8090'/],
])('npm start with %s: the message and the usage, exit code 2, no stack', (_case, args, message) => {
  ensureBuilt();
  const run = spawnSync(process.execPath, [join(DIST, 'scripts', 'start.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
  expect(run.status).toBe(2);
  expect(run.stdout).toBe('');
  expect(run.stderr).toMatch(message);
  expect(run.stderr).toContain('\n\nusage: npm start -- [--emulators]');
  expect(run.stderr).not.toMatch(/ERR_PARSE_ARGS|\n\s+at /);
});
