/**
 * The package as a user gets it: `npm pack`, installed into a scratch project (offline, from the
 * npm cache), type-checked with the TypeScript configuration `tsc --init` writes, and the README's
 * snippet run by name against the Datastore emulator and against a store that is down.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, isListening } from '../../scripts/emulators';
import { ensureBuilt, ROOT } from '../support/functionsFramework';

interface LockEntry {
  version?: string;
  dev?: boolean;
  devOptional?: boolean;
  peer?: boolean;
  link?: boolean;
  [field: string]: unknown;
}

const own = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  license: string;
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  engines: Record<string, string>;
  exports: Record<string, unknown>;
};
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const CLIENT = join(ROOT, 'dist', 'client', 'sessionClient.mjs');

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/**
 * A lockfile for the scratch project made of this repository's own entries for the package's
 * runtime dependencies (plus @types/node), so that `npm ci --offline` finds every tarball in the
 * cache without needing registry metadata.
 */
function scratchLock(tarball: string, integrity: string, typesNode: string): object {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const dependencies = { [own.name]: `file:${tarball}`, '@types/node': typesNode };
  const packages: Record<string, LockEntry> = { '': { name: 'scratch', dependencies } };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.link) continue;
    if (entry.dev && path !== 'node_modules/@types/node' && path !== 'node_modules/undici-types') continue;
    const { dev: _dev, devOptional: _devOptional, peer: _peer, ...rest } = entry;
    packages[path] = rest;
  }
  packages[`node_modules/${own.name}`] = {
    version: own.version,
    resolved: `file:${tarball}`,
    integrity,
    license: own.license,
    dependencies: own.dependencies,
    bin: own.bin,
    engines: own.engines,
  };
  return { name: 'scratch', lockfileVersion: 3, requires: true, packages };
}

function readmeSnippet(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Using the library in your own Node service'));
  const snippet = /```ts\n([^]*?)```/.exec(section)?.[1];
  if (!snippet) throw new Error('README: no ts snippet under "Using the library in your own Node service"');
  return snippet;
}

let app: string;
let files: string[];

beforeAll(async () => {
  ensureBuilt();
  // npm run build compiles the browser client with its own tsconfig; a bare jest run may not have.
  if (!existsSync(CLIENT)) run(process.execPath, [TSC, '-p', join(ROOT, 'client', 'tsconfig.json')], ROOT);
  const dir = mkdtempSync(join(tmpdir(), 'package-test-'));
  // dist/ was just built; --ignore-scripts keeps pack from building it a second time (prepare).
  const tarball = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], ROOT).trim().split('\n').pop()!;
  const tarPath = join(dir, tarball);
  files = run('tar', ['-tzf', tarPath], dir).split('\n').filter(Boolean);

  app = join(dir, 'app');
  run('mkdir', [app], dir);
  const typesNode = (JSON.parse(readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string }).version;
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarPath)).digest('base64')}`;
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module', dependencies: { [own.name]: `file:../${tarball}`, '@types/node': typesNode } }, null, 2));
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify(scratchLock(`../${tarball}`, integrity, typesNode), null, 2));
  run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], app);

  // The configuration `tsc --init` writes, with Node's types as its own comment says to add for Node.
  run(process.execPath, [TSC, '--init'], app);
  const tsconfig = readFileSync(join(app, 'tsconfig.json'), 'utf8');
  if (!/"types": \[\]/.test(tsconfig)) throw new Error(`tsc --init changed: ${tsconfig}`);
  writeFileSync(join(app, 'tsconfig.json'), tsconfig.replace('"types": []', '"types": ["node"]'));
  writeFileSync(join(app, 'server.ts'), readmeSnippet());
  writeFileSync(join(app, 'client.ts'), `import * as client from '${own.name}/client';\nconsole.log(JSON.stringify(Object.keys(client)));\n`);
}, 300_000);

test('the tarball holds the licence, changelog, compiled library with declarations, the CLI, and no sources, maps or local tooling', () => {
  for (const f of ['LICENSE', 'CHANGELOG.md', 'README.md', 'package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/store/datastoreStore.d.ts', 'dist/functions/index.js', 'dist/bin/session-kill.js']) {
    expect(files).toContain(`package/${f}`);
  }
  expect(files.filter((f) => /\.map$|(?<!\.d)\.ts$|^package\/(dist\/)?(scripts|test)\//.test(f))).toEqual([]);
  expect(readFileSync(join(app, 'node_modules', own.name, 'LICENSE'), 'utf8')).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
  expect(own.exports['./client']).toEqual({ types: './dist/client/sessionClient.d.mts', default: './dist/client/sessionClient.mjs' });
  expect(files).toEqual(expect.arrayContaining(['package/dist/client/sessionClient.mjs', 'package/dist/client/sessionClient.d.mts']));
});

test('the README snippet and the client type-check by package name with the default tsconfig; CommonJS and the CLI work too', () => {
  run(process.execPath, [TSC, '-p', 'tsconfig.json'], app);
  const cjs = run(process.execPath, ['-e', `const s = require('${own.name}'); const d = require('${own.name}/datastore-store'); console.log(typeof s.SessionManager, typeof s.createRuntime, typeof d.DatastoreSessionStore)`], app);
  expect(cjs.trim()).toBe('function function function');
  expect(run(process.execPath, [join(app, 'node_modules', '.bin', 'session-kill'), '--help'], app)).toMatch(/^usage: session-kill/);
  expect(JSON.parse(run(process.execPath, ['client.js'], app))).toContain('SessionClient');
});

describe('the README snippet, run from the installed package', () => {
  const children: ChildProcess[] = [];

  async function serve(env: Record<string, string>): Promise<string> {
    const port = await freePort();
    const child = spawn(process.execPath, ['server.js'], {
      cwd: app,
      env: { ...process.env, GOOGLE_CLOUD_PROJECT: 'session-test', SESSION_STORE: 'datastore', ...env, PORT: String(port) },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    for (let i = 0; i < 200 && !(await isListening(port)); i++) {
      if (child.exitCode !== null) throw new Error(`server.js exited with ${child.exitCode}:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return `http://127.0.0.1:${port}/`;
  }

  afterAll(() => {
    for (const c of children) if (c.exitCode === null) process.kill(-c.pid!, 'SIGKILL');
  });

  test('counts visits in Datastore (emulator) and appends the session cookie to the app’s own', async () => {
    const url = await serve({ SESSION_NAMESPACE: `package-${process.pid}-${Date.now()}` });
    const first = await fetch(url);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ visits: 1 });
    const cookies = first.headers.getSetCookie();
    expect(cookies).toHaveLength(2);
    expect(cookies[0]).toBe('theme=dark; Path=/');
    expect(cookies[1]).toMatch(/^__Host-viur_cookie_session-test=[A-Za-z0-9_-]+; .*HttpOnly/);
    const second = await fetch(url, { headers: { cookie: `${cookies[1]!.split(';')[0]}; theme=dark` } });
    expect(await second.json()).toEqual({ visits: 2 });
  });

  test('turns a store outage into a 503 with Retry-After and keeps serving', async () => {
    const closed = await freePort();
    const url = await serve({ DATASTORE_EMULATOR_HOST: `127.0.0.1:${closed}`, SESSION_STORE_TIMEOUT_MS: '2000' });
    for (let i = 0; i < 2; i++) {
      const res = await fetch(url);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
    }
  });
});
