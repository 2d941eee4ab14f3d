/**
 * The local loop of `npm start` (issue 24, item 8): `--host`, your own page beside the API
 * (`--static DIR`), the "next step" line, `session-kill --local` without a MetadataLookupWarning,
 * and README's curl walkthrough, run as written against a launcher on another port, with its wait
 * bounded.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PubSub, Subscription } from '@google-cloud/pubsub';
import { writeLauncherState } from '../../lib/setup/launcherState';
import { freePort } from '../../scripts/emulators';
import { parseLauncherOptions, UsageError } from '../../scripts/launcherOptions';
import { ROOT } from '../support/functionsFramework';
import { type Launcher, startLauncher } from '../support/launcher';
import { pubsub, pullTopic, receive, uniqueName } from '../support/pubsub';
import { runCommand } from '../support/runCommand';

const START = join(ROOT, 'dist', 'scripts', 'start.js');
const CLI = join(ROOT, 'dist', 'bin', 'session-kill.js');

/** Whether anything accepts a TCP connection at host:port. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function sessionOf(api: string, cookie: string): Promise<unknown> {
  return (await fetch(`${api}/session`, { headers: { cookie } })).json();
}

describe('npm start options', () => {
  test('--host takes an IP address or a host name (default 127.0.0.1), --static a directory; anything else is a usage error', () => {
    expect(parseLauncherOptions([], {})).toMatchObject({ host: '127.0.0.1' });
    expect(parseLauncherOptions([], {})).not.toHaveProperty('staticDir');
    for (const host of ['0.0.0.0', '::', '::1', '192.168.1.20', 'localhost', 'dev-box.local'])
      expect(parseLauncherOptions(['--host', host], {})).toMatchObject({ host });
    expect(parseLauncherOptions(['--static', 'public'], {})).toMatchObject({ staticDir: 'public' });
    for (const bad of [
      ['--host', 'a b'],
      ['--host', 'http://x'],
      ['--host', ''],
      ['--static', ''],
    ])
      expect(() => parseLauncherOptions(bad, {})).toThrow(UsageError);
  });

  test('--static with a directory that does not exist stops with the usage (exit 2)', () => {
    const r = spawnSync(process.execPath, [START, '--static', join(tmpdir(), 'no-such-dir-for-npm-start')], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^npm start: --static .*no-such-dir-for-npm-start: not a directory\n\nusage: npm start/);
  });
});

describe('npm start -- --host 127.0.0.2 --static DIR', () => {
  let stack: Launcher;
  let site: string;
  let page: string;

  beforeAll(async () => {
    site = mkdtempSync(join(tmpdir(), 'own-page-'));
    writeFileSync(join(site, 'index.html'), '<!doctype html><title>mine</title>');
    mkdirSync(join(site, 'app'));
    writeFileSync(join(site, 'app', 'index.html'), 'app page');
    writeFileSync(join(site, 'app', 'main.js'), 'export const x = 1;\n');
    writeFileSync(join(tmpdir(), 'outside-own-page.txt'), 'secret');
    symlinkSync(join(tmpdir(), 'outside-own-page.txt'), join(site, 'link.txt'));
    stack = await startLauncher(['--host', '127.0.0.2', '--static', site]);
    page = `http://127.0.0.2:${stack.ports.demo}`;
  }, 90_000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('every server listens on that address only, and the printed URLs, launcher.json and the next step name it', async () => {
    for (const port of Object.values(stack.ports)) {
      expect(await accepts('127.0.0.2', port)).toBe(true);
      expect(await accepts('127.0.0.1', port)).toBe(false);
    }
    const out = stack.output();
    expect(out).toContain(`sessionApi          http://127.0.0.2:${stack.ports.api}`);
    expect(out).toContain(`your page           ${page}   (`);
    expect(out).not.toContain('demo page ');
    expect(out).toMatch(new RegExp(`\\nNext step: open ${page.replace(/\./g, '\\.')}/ — your page`));
    const state = JSON.parse(readFileSync(join(stack.stateDir, 'launcher.json'), 'utf8')) as Record<string, string>;
    expect(state).toMatchObject({
      apiUrl: `http://127.0.0.2:${stack.ports.api}`,
      killPushUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.2:/),
    });
  });

  test('the directory is served at /, with index.html for directories and a content type per file; nothing outside it', async () => {
    const root = await fetch(`${page}/`);
    expect(root.status).toBe(200);
    expect(root.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await root.text()).toContain('<title>mine</title>');
    expect(await (await fetch(`${page}/app/`)).text()).toBe('app page');
    const js = await fetch(`${page}/app/main.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await fetch(`${page}/app/main.js`, { method: 'HEAD' })).status).toBe(200);
    for (const path of ['/missing.html', '/%2e%2e/outside-own-page.txt', '/app/%2e%2e/%2e%2e/outside-own-page.txt', '/link.txt', '/a%00b'])
      expect({ path, status: (await fetch(`${page}${path}`)).status }).toEqual({ path, status: 404 });
    // A raw request line with ../ (fetch would normalise it away).
    const raw = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.2', port: stack.ports.demo }, () =>
        socket.end('GET /../outside-own-page.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      );
      let text = '';
      socket.on('data', (b: Buffer) => (text += b.toString()));
      socket.on('close', () => resolve(text));
    });
    expect(raw).not.toContain('secret');
  });

  test('on the same origin: the API, the browser client and the login relay; session-kill --local reaches the kill function at that address', async () => {
    const key = await fetch(`${page}/session/security-key`);
    expect(key.status).toBe(200);
    const cookie = key.headers.get('set-cookie')!.split(';')[0];
    const client = await fetch(`${page}/client/sessionClient.mjs`);
    expect(client.status).toBe(200);
    expect(await client.text()).toContain('SessionClient');
    const login = await fetch(`${page}/demo/login`, {
      method: 'POST',
      headers: { cookie, origin: page, 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'pagey' }),
    });
    expect(login.status).toBe(200);
    const userCookie = login.headers.get('set-cookie')!.split(';')[0];
    expect(await sessionOf(page, userCookie)).toEqual({ user: 'pagey', data: {} });

    const env = { ...process.env, SESSION_LOCAL_STATE_DIR: stack.stateDir };
    const run = await runCommand(process.execPath, [CLI, '--local', '--user', 'pagey'], env);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(await sessionOf(page, userCookie)).toEqual({ user: null, data: {} });
  });
});

describe('session-kill --local on a stack with the Pub/Sub emulator', () => {
  let client: PubSub;
  let subscription: Subscription;
  let topic: string;

  beforeAll(async () => {
    client = pubsub();
    topic = uniqueName('local-cli');
    ({ subscription } = await pullTopic(client, topic));
  });

  afterAll(async () => {
    await client?.close();
  });

  test('publishes to the emulator launcher.json names and prints nothing but the message id (no MetadataLookupWarning)', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'local-cli-'));
    // What `npm start -- --emulators` writes; this process stands in for the running launcher.
    writeLauncherState({
      pid: process.pid,
      startedAt: new Date().toISOString(),
      stateDir,
      project: process.env.GOOGLE_CLOUD_PROJECT!,
      topic,
      store: 'datastore',
      apiUrl: 'http://localhost:1',
      killUrl: 'http://localhost:1',
      cleanupUrl: 'http://localhost:1/',
      audience: 'http://localhost:1',
      adminEmail: 'nobody@example.test',
      jwksFile: join(stateDir, 'jwks.json'),
      privateKeyFile: join(stateDir, 'key.pem'),
      datastoreEmulatorHost: process.env.DATASTORE_EMULATOR_HOST,
      pubsubEmulatorHost: process.env.PUBSUB_EMULATOR_HOST,
    });
    // A person's shell: no emulator variables, no METADATA_SERVER_DETECTION (the test run sets both).
    const env: NodeJS.ProcessEnv = { ...process.env, SESSION_LOCAL_STATE_DIR: stateDir };
    for (const name of ['METADATA_SERVER_DETECTION', 'PUBSUB_EMULATOR_HOST', 'DATASTORE_EMULATOR_HOST', 'GOOGLE_CLOUD_PROJECT'])
      delete env[name];
    const run = await runCommand(process.execPath, [CLI, '--local', '--user', 'alice'], env);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const [message] = await receive(subscription, 1);
    expect(run.stdout).toBe(`${message.id}\n`);
    expect(JSON.parse(message.data.toString('utf8'))).toEqual({ user: 'alice' });
  });
});

describe("README's walkthrough (Try it locally)", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('A walkthrough with curl'));
  const script = /```sh\n([^]*?)```/.exec(section)![1];
  let stack: Launcher;

  beforeAll(async () => {
    stack = await startLauncher();
  }, 90_000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('names the port once (PORT, defaulting like npm start) and runs as written against npm start on another port', async () => {
    expect(script).toMatch(/^PORT=\$\{PORT:-8080\}\nAPI=http:\/\/localhost:\$PORT\n/);
    expect(script.replace(/^PORT=.*\n/, '')).not.toMatch(/8080/);
    const env = { ...process.env, PORT: String(stack.ports.api), SESSION_LOCAL_STATE_DIR: stack.stateDir };
    const run = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn('bash', ['-e', '-c', script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      child.on('close', (code) => resolve({ code, out }));
    });
    expect(run.code).toBe(0);
    // The answers the comments show, in order.
    const expected = [
      '{"user":null,"data":{}}',
      '{"key":"language","value":"de"}',
      '{"user":"alice","data":{"language":"de"}}',
      '{"messageId":"local-',
      '{"user":null,"data":{}}',
      // npm run cleanup prints the report indented.
      '"done": true',
    ];
    let at = 0;
    for (const e of expected) {
      const found = run.out.indexOf(e, at);
      expect({ e, found: found >= 0, out: run.out }).toEqual({ e, found: true, out: run.out });
      at = found + e.length;
    }
    expect(run.out).not.toContain('no kill after 10 s');
  }, 60_000);

  test('its wait for the kill gives up after about 10 s, saying so, when the session never ends', async () => {
    const wait = script.split('\n').find((l) => l.includes('until '))!;
    const closed = await freePort();
    const started = Date.now();
    const r = spawnSync('bash', ['-c', `API=http://127.0.0.1:${closed}; JAR=$(mktemp); ${wait}`], { encoding: 'utf8', timeout: 30_000 });
    const seconds = (Date.now() - started) / 1000;
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('no kill after 10 s: is npm start still running?\n');
    expect(seconds).toBeGreaterThan(9);
    expect(seconds).toBeLessThan(25);
  }, 40_000);
});
