import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, isListening } from '../../scripts/emulators';

const START = join(__dirname, '..', '..', 'dist', 'scripts', 'start.js');

/** `npm start`'s launcher in its default mode (in-memory store), on free ports. */
describe('npm start (default mode)', () => {
  let child: ChildProcess;
  let output = '';
  let ports: number[];

  beforeAll(async () => {
    if (!existsSync(START)) throw new Error('dist/ is missing: npm test builds it first (npm run build)');
    ports = [await freePort(), await freePort(), await freePort()];
    const env = { ...process.env };
    for (const name of ['DATASTORE_EMULATOR_HOST', 'PUBSUB_EMULATOR_HOST', 'GOOGLE_CLOUD_PROJECT', 'SESSION_NAMESPACE']) delete env[name];
    child = spawn(
      process.execPath,
      [
        START,
        '--port',
        `${ports[0]}`,
        '--kill-port',
        `${ports[1]}`,
        '--cleanup-port',
        `${ports[2]}`,
        '--demo-port',
        `${await freePort()}`,
        '--state-dir',
        mkdtempSync(join(tmpdir(), 'launcher-')),
      ],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    const deadline = Date.now() + 30_000;
    while (!/ADMIN_TOKEN=\S+/.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`launcher did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  test('warns that the memory store is for local use, serves the API, logs in with the printed token, and stops on Ctrl-C', async () => {
    expect(output).toMatch(/SESSION_STORE=memory: .*local development/);
    const api = `http://localhost:${ports[0]}`;
    const keyRes = await fetch(`${api}/session/security-key`);
    expect(keyRes.status).toBe(200);
    const setCookie = keyRes.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/HttpOnly/);
    const cookie = setCookie.split(';')[0];
    const { securityKey } = (await keyRes.json()) as { securityKey: string };
    const put = await fetch(`${api}/session/data/language`, {
      method: 'PUT',
      headers: { cookie, 'x-security-key': securityKey, 'content-type': 'application/json' },
      body: '"de"',
    });
    expect(put.status).toBe(200);
    const token = /ADMIN_TOKEN=(\S+)/.exec(output)![1];
    const login = await fetch(`${api}/session/login`, {
      method: 'POST',
      headers: { cookie, authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'alice' }),
    });
    expect(login.status).toBe(200);
    expect(await login.json()).toEqual({ user: 'alice', data: { language: 'de' } });
    // The kill CLI pointed at the local stack (no Pub/Sub on the memory store: it pushes to the kill function).
    const aliceCookie = login.headers.get('set-cookie')!.split(';')[0];
    const { spawnSync } = await import('node:child_process');
    const cli = spawnSync(
      process.execPath,
      [join(__dirname, '..', '..', 'dist', 'bin', 'session-kill.js'), '--user', 'alice', '--project', 'session-local'],
      {
        env: { ...process.env, SESSION_KILL_PUSH_URL: `http://localhost:${ports[1]}/projects/session-local/topics/session-kill` },
        encoding: 'utf8',
      },
    );
    expect(cli.status).toBe(0);
    expect(cli.stdout).toMatch(/^local-/);
    expect(await (await fetch(`${api}/session`, { headers: { cookie: aliceCookie } })).json()).toEqual({ user: null, data: {} });
    const cleanup = await fetch(`http://localhost:${ports[2]}/`, { method: 'POST' });
    expect(((await cleanup.json()) as { done: boolean }).done).toBe(true);

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    for (const port of ports) expect(await isListening(port)).toBe(false);
  });

  test('a port already in use gives a clear message', async () => {
    const { createServer } = await import('node:net');
    const blocker = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const busy = (blocker.address() as { port: number }).port;
    const run = spawn(
      process.execPath,
      [
        START,
        '--port',
        `${busy}`,
        '--kill-port',
        `${await freePort()}`,
        '--cleanup-port',
        `${await freePort()}`,
        '--state-dir',
        mkdtempSync(join(tmpdir(), 'launcher-')),
      ],
      {
        env: { ...process.env, DATASTORE_EMULATOR_HOST: '', PUBSUB_EMULATOR_HOST: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let text = '';
    run.stdout.on('data', (b: Buffer) => (text += b.toString()));
    run.stderr.on('data', (b: Buffer) => (text += b.toString()));
    const code = await new Promise<number | null>((resolve) => run.once('exit', resolve));
    blocker.close();
    expect(code).toBe(1);
    expect(text).toContain(`port ${busy} (sessionApi) is already in use`);
  });
});
