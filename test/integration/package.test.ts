/**
 * The package as a user gets it: `npm pack`, installed into a scratch project (offline, from the
 * npm cache) next to Express and its types, type-checked with the TypeScript configuration `tsc
 * --init` writes, and the README's snippet (an Express app on the `/express` middleware) run by name
 * against the Datastore emulator and against a store that is down; then each
 * documented entry (package.json `exports`) loaded from the installed package with require() and
 * with import(), and the contract suite of `/testing` run under node:test.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, isListening } from '../../scripts/emulators';
import { ensureBuilt, ROOT } from '../support/functionsFramework';
import { extraNodes } from '../support/nodeVersions';
import { MemorySessionStore } from '../../lib/store/memoryStore';
import { storeContract } from '../../lib/store/testing';

/** Every case of the store contract suite, as the source defines it: the installed copy must run them all. */
const CONTRACT_CASES = storeContract(() => new MemorySessionStore()).length;

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
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  devDependencies: Record<string, string>;
  bin: Record<string, string>;
  engines: Record<string, string>;
  main: string;
  types: string;
  exports: Record<string, unknown>;
};
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const CLIENT = join(ROOT, 'dist', 'client', 'sessionClient.mjs');

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { subsetLock } = require('../../scripts/lockSubset.js') as {
  subsetLock(lock: unknown, root: LockEntry): { packages: Record<string, LockEntry> };
};

/**
 * A lockfile for a scratch project that depends on the packed package and on `others` (each
 * installed as this repository's lockfile pins it), made of this repository's own entries for
 * what they reach (scripts/lockSubset.js), so that `npm ci --offline` finds every tarball in the
 * cache without needing registry metadata.
 */
function scratchLock(tarball: string, integrity: string, others: Record<string, string>): object {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as unknown;
  // The package's dependencies land at the top of node_modules, where the repository has them.
  const reached = subsetLock(lock, { name: 'scratch', dependencies: { ...own.dependencies, ...others } }).packages;
  const packages: Record<string, LockEntry> = { '': { name: 'scratch', dependencies: { [own.name]: `file:${tarball}`, ...others } } };
  for (const [path, entry] of Object.entries(reached)) {
    if (path === '' || entry.link) continue;
    const { dev: _dev, devOptional: _devOptional, peer: _peer, ...rest } = entry;
    packages[path] = rest;
  }
  packages[`node_modules/${own.name}`] = {
    version: own.version,
    resolved: `file:${tarball}`,
    integrity,
    license: own.license,
    dependencies: own.dependencies,
    peerDependencies: own.peerDependencies,
    peerDependenciesMeta: own.peerDependenciesMeta,
    bin: own.bin,
    engines: own.engines,
  };
  return { name: 'scratch', lockfileVersion: 3, requires: true, packages };
}

interface LockFile {
  packages: Record<string, LockEntry>;
}

/** A scratch project (`type: module`) with the packed package and `others` installed, offline. */
function scratchApp(dir: string, name: string, tarball: string, others: Record<string, string>): string {
  const at = join(dir, name);
  mkdirSync(at);
  const integrity = `sha512-${createHash('sha512')
    .update(readFileSync(join(dir, tarball)))
    .digest('base64')}`;
  const dependencies = { [own.name]: `file:../${tarball}`, ...others };
  writeFileSync(join(at, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module', dependencies }, null, 2));
  writeFileSync(join(at, 'package-lock.json'), JSON.stringify(scratchLock(`../${tarball}`, integrity, others), null, 2));
  run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], at);
  return at;
}

/** Packages installed in a project and the size of its node_modules (du -sk). */
function installSize(at: string): { packages: number; kib: number } {
  const hidden = JSON.parse(readFileSync(join(at, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: object };
  const kib = Number(run('du', ['-sk', 'node_modules'], at).split('\t')[0]);
  return { packages: Object.keys(hidden.packages).filter((k) => k.startsWith('node_modules/')).length, kib };
}

function readmeSnippet(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Using the library in your own Node service'));
  const snippet = /```ts\n([^]*?)```/.exec(section)?.[1];
  if (!snippet) throw new Error('README: no ts snippet under "Using the library in your own Node service"');
  return snippet;
}

let app: string;
let libraryOnly: string;
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

  const typesNode = (JSON.parse(readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string })
    .version;
  // A service that also runs the functions and the CLI: the optional peers installed beside the package, as README says.
  // The README's snippet is an Express app in TypeScript: Express and its types as the repository pins them.
  const pinned = (name: string) =>
    (JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as LockFile).packages[`node_modules/${name}`].version!;
  const expressApp = { express: pinned('express'), '@types/express': pinned('@types/express') };
  app = scratchApp(dir, 'app', tarball, { '@types/node': typesNode, ...own.peerDependencies, ...expressApp });
  // A service that embeds the library alone: the package and its dependencies, nothing else.
  libraryOnly = scratchApp(dir, 'library-only', tarball, {});

  // The configuration `tsc --init` writes, with Node's types as its own comment says to add for Node.
  run(process.execPath, [TSC, '--init'], app);
  const tsconfig = readFileSync(join(app, 'tsconfig.json'), 'utf8');
  if (!/"types": \[\]/.test(tsconfig)) throw new Error(`tsc --init changed: ${tsconfig}`);
  writeFileSync(join(app, 'tsconfig.json'), tsconfig.replace('"types": []', '"types": ["node"]'));
  writeFileSync(join(app, 'server.ts'), readmeSnippet());
  writeFileSync(
    join(app, 'client.ts'),
    `import * as client from '${own.name}/client';\nconsole.log(JSON.stringify(Object.keys(client)));\n`,
  );
}, 300_000);

test('the tarball holds the licence, changelog, compiled library with declarations, the CLI, and no sources, maps or local tooling', () => {
  for (const f of [
    'LICENSE',
    'CHANGELOG.md',
    'README.md',
    'package.json',
    'dist/lib/index.js',
    'dist/lib/index.d.ts',
    'dist/lib/store/datastoreStore.d.ts',
    'dist/functions/index.js',
    'dist/bin/session-kill.js',
  ]) {
    expect(files).toContain(`package/${f}`);
  }
  expect(files.filter((f) => /\.map$|(?<!\.d)\.ts$|^package\/(dist\/)?(scripts|test)\//.test(f))).toEqual([]);
  expect(readFileSync(join(app, 'node_modules', own.name, 'LICENSE'), 'utf8')).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
  expect(own.exports['./client']).toEqual({ types: './dist/client/sessionClient.d.mts', default: './dist/client/sessionClient.mjs' });
  expect(files).toEqual(expect.arrayContaining(['package/dist/client/sessionClient.mjs', 'package/dist/client/sessionClient.d.mts']));
});

test('the README snippet and the client type-check by package name with the default tsconfig; CommonJS and the CLI work too', () => {
  run(process.execPath, [TSC, '-p', 'tsconfig.json'], app);
  const cjs = run(
    process.execPath,
    [
      '-e',
      `const s = require('${own.name}'); const d = require('${own.name}/datastore-store'); console.log(typeof s.SessionManager, typeof s.createRuntime, typeof d.DatastoreSessionStore)`,
    ],
    app,
  );
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
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    for (let i = 0; i < 200 && !(await isListening(port)); i++) {
      if (child.exitCode !== null) throw new Error(`server.js exited with ${child.exitCode}:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return `http://127.0.0.1:${port}/`;
  }

  afterAll(() => {
    for (const c of children) if (c.exitCode === null) process.kill(-c.pid!, 'SIGKILL');
  });

  test('counts visits in Datastore (emulator), appends the session cookie to the app’s own, guards a change with csrf()', async () => {
    const url = await serve({ SESSION_NAMESPACE: `package-${process.pid}-${Date.now()}` });
    const first = await fetch(url);
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ visits: 1 });
    const cookies = first.headers.getSetCookie();
    expect(cookies).toHaveLength(2);
    expect(cookies[0]).toBe('theme=dark; Path=/');
    expect(cookies[1]).toMatch(/^__Host-viur_cookie_session-test=[A-Za-z0-9_-]+; .*HttpOnly/);
    const cookie = `${cookies[1].split(';')[0]}; theme=dark`;
    const second = await fetch(url, { headers: { cookie } });
    expect(await second.json()).toEqual({ visits: 2 });

    // The snippet's csrf(): the one-time key is consumed before the handler, a fresh one comes back, a spent one is refused.
    const { securityKey } = (await (await fetch(`${url}security-key`, { headers: { cookie } })).json()) as { securityKey: string };
    const post = (key: string) =>
      fetch(`${url}language`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/json', 'x-security-key': key },
        body: JSON.stringify({ language: 'de' }),
      });
    const changed = await post(securityKey);
    expect(changed.status).toBe(200);
    expect(await changed.json()).toEqual({ language: 'de' });
    expect(changed.headers.get('x-security-key')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const spent = await post(securityKey);
    expect(spent.status).toBe(403);
    expect(await spent.json()).toMatchObject({ error: { code: 'csrf' } });
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

/** The documented entries (README, "Using the library…"): the whole of `exports`. */
const ENTRIES = ['.', './datastore-store', './functions', './client', './testing', './express', './package.json'];
/** Subpaths earlier versions exported, one module each; their exports are in "." now. */
const REMOVED = ['./session', './store', './memory-store', './runtime', './config', './kill-publisher', './kill-message', './errors'];

/** Known exports of ".", among them what the removed subpaths offered (config, runtime, errors, kill messages). */
const LIBRARY = Object.fromEntries(
  [
    ...['SessionManager', 'MemorySessionStore', 'createRuntime', 'loadConfig', 'StoreUnavailableError', 'TooManyKeysError'],
    ...['publishKill', 'publisherFor', 'killMessageData', 'parseKillMessageData'],
  ].map((k) => [k, 'function']),
);

/**
 * Loads every entry by package name with `load` (require or import) and answers, per entry, what the
 * test checks: the types of known exports, or the error's code. The same body runs as CommonJS
 * (entries.cjs) and as an ES module (entries.mjs), so that both resolve through `exports`.
 */
const entriesProbe = (load: string) => `
const name = ${JSON.stringify(own.name)};
const load = ${load};
const types = (m, keys) => Object.fromEntries(keys.map((k) => [k, typeof m[k]]));
async function probe(entry, check) {
  try {
    return await check(await load(entry === '.' ? name : name + entry.slice(1)));
  } catch (err) {
    return { error: err.code ?? String(err) };
  }
}
async function main() {
  const out = {};
  out['.'] = await probe('.', (m) => types(m, ${JSON.stringify(Object.keys(LIBRARY))}));
  out['./datastore-store'] = await probe('./datastore-store', (m) => types(m, ['DatastoreSessionStore']));
  out['./testing'] = await probe('./testing', async (m) => {
    // Run, not only loaded: the suite from the tarball passes the store from the tarball.
    const { MemorySessionStore } = await load(name);
    const cases = m.storeContract(() => new MemorySessionStore());
    for (const c of cases) await c.run();
    return { ...types(m, ['runStoreContract', 'storeContract']), passed: cases.length };
  });
  out['./client'] = await probe('./client', (m) => types(m, ['SessionClient', 'SessionApiError']));
  out['./express'] = await probe('./express', (m) => types(m, ['session', 'csrf', 'sessionOf']));
  out['./package.json'] = await probe('./package.json', (m) => ({ name: (m.default ?? m).name }));
  // Registers the three functions in the functions-framework the package depends on (the one a
  // deployment runs): its test server finds each by name only if the registration reached it.
  out['./functions'] = await probe('./functions', async (m) => {
    const { getTestServer } = await load('@google-cloud/functions-framework/testing');
    return { ENTRY_POINTS: m.ENTRY_POINTS, registered: m.ENTRY_POINTS.filter((t) => getTestServer(t)) };
  });
  for (const entry of ${JSON.stringify(REMOVED)}) out[entry] = await probe(entry, () => 'loaded');
  out['./dist/lib/setup/config.js'] = await probe('./dist/lib/setup/config.js', () => 'loaded');
  console.log(JSON.stringify(out));
}
main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
`;

describe('each documented entry, loaded from the installed package', () => {
  // Loading ./functions parses the configuration from the environment (a bad one stops the
  // process): a project, and the memory store so that nothing reaches for Datastore.
  const env = { ...process.env, GOOGLE_CLOUD_PROJECT: 'session-test', SESSION_STORE: 'memory' };
  const common = {
    '.': LIBRARY,
    './datastore-store': { DatastoreSessionStore: 'function' },
    './testing': { runStoreContract: 'function', storeContract: 'function', passed: CONTRACT_CASES },
    './express': { session: 'function', csrf: 'function', sessionOf: 'function' },
    './package.json': { name: own.name },
    './functions': {
      ENTRY_POINTS: ['sessionApi', 'killSessionByUser', 'startClearSessions'],
      registered: ['sessionApi', 'killSessionByUser', 'startClearSessions'],
    },
    ...Object.fromEntries(REMOVED.map((r) => [r, { error: 'ERR_PACKAGE_PATH_NOT_EXPORTED' }])),
    // Nor any file by its path: only the entries are the package's interface.
    './dist/lib/setup/config.js': { error: 'ERR_PACKAGE_PATH_NOT_EXPORTED' },
  };

  test('package.json: `main`, `types` and "." name the library; `exports` is exactly the documented entries, each in the README', () => {
    expect(own.main).toBe('dist/lib/index.js');
    expect(own.types).toBe('dist/lib/index.d.ts');
    expect(own.exports['.']).toEqual({ types: `./${own.types}`, default: `./${own.main}` });
    expect(Object.keys(own.exports)).toEqual(ENTRIES);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const [entry, target] of Object.entries(own.exports)) {
      for (const file of typeof target === 'string' ? [target] : Object.values(target as Record<string, string>)) {
        expect(files).toContain(`package/${file.replace(/^\.\//, '')}`);
      }
      if (entry !== '.' && entry !== './package.json') expect(readme).toContain(`\`${own.name}${entry.slice(1)}\``);
    }
  });

  test('CommonJS: require() of each entry (./client is an ES module for browsers: require() of it may fail)', () => {
    writeFileSync(join(app, 'entries.cjs'), entriesProbe('(id) => require(id)'));
    const out = JSON.parse(run(process.execPath, ['entries.cjs'], app, env)) as Record<string, unknown>;
    const { './client': client, ...rest } = out;
    expect(rest).toEqual(common);
    // Node 20.19+ and 22.12+ can require() an ES module without top-level await; older ones refuse.
    expect([{ SessionClient: 'function', SessionApiError: 'function' }, { error: 'ERR_REQUIRE_ESM' }]).toContainEqual(client);
  });

  test('ES modules: import() of each entry, named exports included', () => {
    // JSON is imported with its type attribute, as Node requires of ES modules.
    const load = "(id) => import(id, id.endsWith('.json') ? { with: { type: 'json' } } : undefined)";
    writeFileSync(join(app, 'entries.mjs'), entriesProbe(load));
    const out = JSON.parse(run(process.execPath, ['entries.mjs'], app, env)) as Record<string, unknown>;
    expect(out).toEqual({ ...common, './client': { SessionClient: 'function', SessionApiError: 'function' } });
  });

  test.each(extraNodes().map((n) => [n.major, n.bin]))(
    'on Node %s (each supported LTS line, binaries from the npm registry): require() and import() of each entry',
    (_major, node) => {
      writeFileSync(join(app, 'entries.cjs'), entriesProbe('(id) => require(id)'));
      writeFileSync(
        join(app, 'entries.mjs'),
        entriesProbe("(id) => import(id, id.endsWith('.json') ? { with: { type: 'json' } } : undefined)"),
      );
      const client = { SessionClient: 'function', SessionApiError: 'function' };
      // Node 22.12+ and 24 require() an ES module without top-level await: ./client loads both ways.
      expect(JSON.parse(run(node, ['entries.cjs'], app, env))).toEqual({ ...common, './client': client });
      expect(JSON.parse(run(node, ['entries.mjs'], app, env))).toEqual({ ...common, './client': client });
    },
  );

  test('/testing under node:test, as its @example shows: type-checks with the default tsconfig and passes every case', () => {
    writeFileSync(
      join(app, 'storeContract.test.ts'),
      [
        "import { describe, test } from 'node:test';",
        `import { MemorySessionStore } from '${own.name}';`,
        `import { runStoreContract } from '${own.name}/testing';`,
        '',
        "runStoreContract({ describe, test }, 'MemorySessionStore', () => new MemorySessionStore());",
        '',
      ].join('\n'),
    );
    run(process.execPath, [TSC, '-p', 'tsconfig.json'], app);
    const report = run(process.execPath, ['--test', '--test-reporter=tap', 'storeContract.test.js'], app);
    expect(report).toMatch(/^# Subtest: store contract: MemorySessionStore$/m);
    expect(report).toMatch(new RegExp(`^# tests ${CONTRACT_CASES}$`, 'm'));
    expect(report).toMatch(new RegExp(`^# pass ${CONTRACT_CASES}$`, 'm'));
  });
});

test('README shows the install that works today: the packed tarball by its real name (no registry, no placeholder URL)', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Using the library in your own Node service'));
  expect(files.length).toBeGreaterThan(0);
  expect(section).toContain(`npm install ../${own.name}/${own.name}-${own.version}.tgz`);
  expect(section).toMatch(/^npm ci && npm pack /m);
  // No public address yet: none is invented.
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  for (const field of ['repository', 'homepage', 'bugs'])
    if (field in pkg) expect(JSON.stringify(pkg[field])).not.toMatch(/example|…|\.\.\.|your-|<|TODO/i);
});

describe('the library alone: functions-framework and Pub/Sub are optional peers', () => {
  test('package.json: the two are optional peer dependencies (and devDependencies here), not dependencies', () => {
    const peers = ['@google-cloud/functions-framework', '@google-cloud/pubsub'];
    expect(Object.keys(own.peerDependencies).sort()).toEqual(peers);
    for (const p of peers) {
      expect(own.peerDependenciesMeta[p]).toEqual({ optional: true });
      expect(own.dependencies).not.toHaveProperty([p]);
      expect(own.devDependencies[p]).toBe(own.peerDependencies[p]);
    }
  });

  test('installs without them, much smaller; the library, the Datastore store and the memory store work; what needs them says so', () => {
    const full = installSize(app);
    const alone = installSize(libraryOnly);
    process.stderr.write(
      `installed: ${alone.packages} packages, ${(alone.kib / 1024).toFixed(0)} MiB (library alone); ` +
        `${full.packages} packages, ${(full.kib / 1024).toFixed(0)} MiB (with functions-framework, Pub/Sub and @types/node)\n`,
    );
    for (const absent of ['@google-cloud/functions-framework', '@google-cloud/pubsub', 'express'])
      expect(existsSync(join(libraryOnly, 'node_modules', absent))).toBe(false);
    expect(alone.packages).toBeLessThan(full.packages * 0.7);
    expect(alone.kib).toBeLessThan(full.kib * 0.7);

    writeFileSync(
      join(libraryOnly, 'probe.cjs'),
      `
const lib = require('${own.name}');
const { DatastoreSessionStore } = require('${own.name}/datastore-store');
async function main() {
  const { sessions } = lib.createRuntime(lib.loadConfig());
  const out = { datastoreStore: typeof DatastoreSessionStore, manager: sessions.constructor.name };
  try {
    await lib.publishKill({ user: 'alice' }, { projectId: 'p', topic: 'session-kill' });
    out.publishKill = 'published?';
  } catch (err) {
    out.publishKill = err.message;
  }
  try {
    require('${own.name}/functions');
    out.functions = 'loaded?';
  } catch (err) {
    out.functions = err.code + ' ' + /Cannot find module '([^']+)'/.exec(err.message)?.[1];
  }
  console.log(JSON.stringify(out));
}
main();
`,
    );
    const env = { ...process.env, GOOGLE_CLOUD_PROJECT: 'session-test', SESSION_STORE: 'memory' };
    expect(JSON.parse(run(process.execPath, ['probe.cjs'], libraryOnly, env))).toEqual({
      datastoreStore: 'function',
      manager: 'SessionManager',
      publishKill:
        'publishing a kill message to Pub/Sub needs the package @google-cloud/pubsub (an optional peer dependency): npm install @google-cloud/pubsub',
      functions: 'MODULE_NOT_FOUND @google-cloud/functions-framework',
    });
    const cli = spawnSync(
      process.execPath,
      [join(libraryOnly, 'node_modules', '.bin', 'session-kill'), '--user', 'alice', '--project', 'p'],
      { cwd: libraryOnly, env: { ...process.env, PUBSUB_EMULATOR_HOST: '' }, encoding: 'utf8' },
    );
    expect(cli.status).toBe(1);
    expect(cli.stderr).toContain('npm install @google-cloud/pubsub');
  });
});
