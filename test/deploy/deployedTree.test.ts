/**
 * The deployed tree as Cloud Build builds it and the runtime starts it (issue 15): the output of
 * scripts/package-deploy.js, installed (`npm ci --offline` from npm's cache; where the cache lacks a
 * package, the repository's node_modules linked in instead, the shortcut bench/coldStart.ts's smoke
 * run takes too), built with `npm run gcp-build` (tsc, then deploy/bundle.js: one esbuild bundle and
 * its V8 code cache), then started with `functions-framework --target=NAME` from that directory, as
 * the runtime does, against the emulators of the test run. No timing is asserted.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort, isListening } from '../../scripts/emulators';
import { ROOT } from '../support/functionsFramework';
import { extraNodes } from '../support/nodeVersions';

let tree: string;
let preload: string;
let installedBy: 'npm ci --offline' | 'linked node_modules';
/** Packages in the tree's node_modules after `npm ci`, and after the buildpack's prune (npm ci only). */
let installed: { ci: number; pruned: number } | undefined;

function installedPackages(dir: string): string[] {
  const hidden = join(dir, 'node_modules', '.package-lock.json');
  const lock = JSON.parse(readFileSync(hidden, 'utf8')) as { packages: Record<string, unknown> };
  return Object.keys(lock.packages).filter((k) => k.startsWith('node_modules/'));
}

/** Answers GET /__probe with what loader.js did with the code cache and whether Datastore came from node_modules. */
const PRELOAD = `
const http = require('node:http');
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, res) {
  if (event === 'request' && req.url === '/__probe') {
    const keys = Object.keys(require.cache);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      codeCache: process[Symbol.for('viur-session.codeCache')] ?? 'none',
      datastoreFromNodeModules: keys.filter((k) => k.includes('/@google-cloud/datastore/')).length,
      pubsubFromNodeModules: keys.filter((k) => k.includes('/@google-cloud/pubsub/')).length,
    }));
    return true;
  }
  return emit.apply(this, arguments);
};
`;

function run(cmd: string, args: string[], cwd: string): { status: number | null; output: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

interface Started {
  child: ChildProcess;
  url: string;
  output(): string;
  logs(): Array<Record<string, unknown>>;
  stop(): Promise<number | null>;
}

/**
 * `functions-framework --target=…` from the tree, as the runtime starts it, in its own process group;
 * with `node`, the framework's bin runs on that Node binary instead of the one on PATH.
 */
async function startDeployed(target: string, env: Record<string, string> = {}, node?: string): Promise<Started> {
  const port = await freePort();
  const bin = join(tree, 'node_modules', '.bin', 'functions-framework');
  const [command, args] = node ? [node, [realpathSync(bin), `--target=${target}`]] : [bin, [`--target=${target}`]];
  const child = spawn(command, args, {
    cwd: tree,
    env: {
      ...process.env,
      PORT: String(port),
      NODE_ENV: 'production',
      NODE_OPTIONS: `--require=${preload}`,
      SESSION_NAMESPACE: `deployed-${randomBytes(4).toString('hex')}`,
      ...env,
    },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr.on('data', (b: Buffer) => (text += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(-child.pid!, 'SIGTERM');
      const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    }
    return child.exitCode;
  };
  const logs = () =>
    text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${target} exited with ${child.exitCode}:\n${text}`);
    if (await isListening(port)) return { child, url: `http://127.0.0.1:${port}`, output: () => text, logs, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`${target} did not listen:\n${text}`);
}

async function probe(s: Started): Promise<{ codeCache: string; datastoreFromNodeModules: number; pubsubFromNodeModules: number }> {
  return (await fetch(`${s.url}/__probe`)).json() as never;
}

/** A session made through the API, read back with its cookie: the whole request path with its Datastore lookup. */
async function sessionRoundTrip(s: Started): Promise<void> {
  const first = await fetch(`${s.url}/session/security-key`);
  expect(first.status).toBe(200);
  const cookie = first.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .find((c) => c.startsWith('__Host-viur_cookie_'));
  const key = first.headers.get('sec-x-viur-staticskey');
  expect(cookie).toBeDefined();
  expect(key).toBeTruthy();
  const put = await fetch(`${s.url}/session/data/colour`, {
    method: 'PUT',
    headers: { cookie: cookie!, 'sec-x-viur-staticskey': key!, 'content-type': 'application/json' },
    body: '"teal"',
  });
  expect(put.status).toBe(200);
  const read = await fetch(`${s.url}/session`, { headers: { cookie: cookie! } });
  expect(read.status).toBe(200);
  expect(JSON.stringify(await read.json())).toContain('teal');
}

beforeAll(() => {
  const packaged = run(process.execPath, ['scripts/package-deploy.js'], ROOT);
  if (packaged.status !== 0) throw new Error(`package-deploy failed:\n${packaged.output}`);
  tree = mkdtempSync(join(tmpdir(), 'deployed-tree-'));
  cpSync(join(ROOT, 'build', 'deploy'), tree, { recursive: true });
  preload = join(tree, '.probe-preload.js');
  writeFileSync(preload, PRELOAD);
  const ci = run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], tree);
  if (ci.status === 0) installedBy = 'npm ci --offline';
  else {
    // Not every machine has every tarball in npm's cache; the same packages, already installed, stand in.
    rmSync(join(tree, 'node_modules'), { recursive: true, force: true });
    symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'), 'dir');
    installedBy = 'linked node_modules';
  }
  const build = run('npm', ['run', '--silent', 'gcp-build'], tree);
  if (build.status !== 0) throw new Error(`gcp-build in the deployed tree failed:\n${build.output}`);
  if (installedBy === 'npm ci --offline') {
    // What the buildpack does after gcp-build (`npm prune --production`): the functions then run on
    // the dependencies alone. Never on the linked node_modules, which are the repository's.
    const ci = installedPackages(tree).length;
    const prune = run('npm', ['prune', '--omit=dev', '--offline', '--no-audit', '--no-fund'], tree);
    if (prune.status !== 0) throw new Error(`npm prune --omit=dev in the deployed tree failed:\n${prune.output}`);
    installed = { ci, pruned: installedPackages(tree).length };
  }
}, 600_000);

afterAll(() => {
  if (tree) rmSync(tree, { recursive: true, force: true });
});

describe('the deployed tree (package-deploy → npm ci → gcp-build)', () => {
  test('Cloud Build installs the functions’ dependencies and only the build’s devDependencies; the prune leaves the dependencies', () => {
    process.stderr.write(
      `deployed tree installed by ${installedBy}${installed ? `: ${installed.ci} packages, ${installed.pruned} after npm prune --omit=dev` : ''}\n`,
    );
    const lock = JSON.parse(readFileSync(join(tree, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    for (const tooling of ['jest', 'ts-jest', '@stryker-mutator/core', 'playwright-core', 'eslint', 'prettier', 'dependency-cruiser'])
      expect(lock.packages).not.toHaveProperty([`node_modules/${tooling}`]);
    for (const built of ['typescript', 'esbuild']) expect(lock.packages[`node_modules/${built}`]?.dev).toBe(true);
    for (const runtime of ['@google-cloud/functions-framework', '@google-cloud/pubsub', '@google-cloud/datastore'])
      expect({ runtime, dev: lock.packages[`node_modules/${runtime}`]?.dev }).toEqual({ runtime, dev: undefined });
    if (installed) {
      const left = new Set(installedPackages(tree));
      for (const gone of ['node_modules/typescript', 'node_modules/esbuild']) expect(left.has(gone)).toBe(false);
      for (const kept of ['@google-cloud/functions-framework', '@google-cloud/pubsub', '@google-cloud/datastore', 'express'])
        expect(left.has(`node_modules/${kept}`)).toBe(true);
    }
  });

  test('gcp-build leaves the bundle, its loader (the deployed main) and a code cache', () => {
    const pkg = JSON.parse(readFileSync(join(tree, 'package.json'), 'utf8')) as { main: string };
    expect(pkg.main).toBe('dist/deploy/index.cjs');
    for (const f of ['dist/deploy/index.cjs', 'dist/deploy/functions.js', 'dist/deploy/functions.cache'])
      expect(statSync(join(tree, f)).size).toBeGreaterThan(0);
    // The library build is there too (the package's own `main`), and client/ compiled.
    expect(existsSync(join(tree, 'dist', 'functions', 'index.js'))).toBe(true);
    expect(existsSync(join(tree, 'dist', 'client', 'sessionClient.mjs'))).toBe(true);
  });

  test('sessionApi starts under functions-framework from the tree and serves a session from the bundle, with the code cache accepted', async () => {
    const s = await startDeployed('sessionApi', { LOG_EXECUTION_ID: 'true', SESSION_LOG_REQUESTS: 'all' });
    try {
      await sessionRoundTrip(s);
      const p = await probe(s);
      expect(p).toEqual({ codeCache: 'accepted', datastoreFromNodeModules: 0, pubsubFromNodeModules: 0 });
      // functions-framework's execution-id logging still wraps our structured lines.
      const line = s.logs().find((l) => typeof l.message === 'string' && l.message.startsWith('GET /session 200'));
      expect(line).toBeDefined();
      expect(line!['logging.googleapis.com/labels']).toEqual({ execution_id: expect.any(String) });
    } finally {
      // The framework's own SIGTERM handling: it closes the server and exits cleanly.
      expect(await s.stop()).toBe(0);
    }
  }, 120_000);

  test('killSessionByUser and startClearSessions register and answer from the tree', async () => {
    const kill = await startDeployed('killSessionByUser', { FUNCTION_SIGNATURE_TYPE: 'cloudevent' });
    try {
      // A malformed kill message is acknowledged (2xx) and logged, never retried.
      const r = await fetch(kill.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'ce-id': 'deployed-1',
          'ce-specversion': '1.0',
          'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
          'ce-source': '//pubsub.googleapis.com/projects/p/topics/t',
        },
        body: JSON.stringify({ message: { data: Buffer.from('not json').toString('base64'), messageId: 'deployed-1' } }),
      });
      expect(r.status).toBeLessThan(300);
      expect(kill.logs().some((l) => l.message === 'malformed kill message acknowledged without action')).toBe(true);
      // A valid one runs the deletion engine on the bundled Datastore client.
      const ok = await fetch(kill.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'ce-id': 'deployed-2',
          'ce-specversion': '1.0',
          'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
          'ce-source': '//pubsub.googleapis.com/projects/p/topics/t',
        },
        body: JSON.stringify({
          message: { data: Buffer.from(JSON.stringify({ user: 'nobody@example.test' })).toString('base64'), messageId: 'deployed-2' },
        }),
      });
      expect(ok.status).toBeLessThan(300);
      expect(kill.logs().find((l) => l.message === 'kill finished')).toMatchObject({ messageId: 'deployed-2', deleted: 0 });
    } finally {
      await kill.stop();
    }
    const cleanup = await startDeployed('startClearSessions');
    try {
      const r = await fetch(cleanup.url, { method: 'POST' });
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ done: true, continued: false });
    } finally {
      await cleanup.stop();
    }
  }, 120_000);

  test('a corrupt, truncated or missing code cache is rejected or skipped, and sessionApi still starts and serves', async () => {
    const cacheFile = join(tree, 'dist', 'deploy', 'functions.cache');
    const good = readFileSync(cacheFile);
    try {
      const cases: Array<[string, Buffer | undefined, string]> = [
        ['corrupt', Buffer.from(good.map((b, i) => (i > 64 ? b ^ 0x5a : b))), 'rejected'],
        ['truncated', good.subarray(0, good.length >> 1), 'rejected'],
        ['garbage', randomBytes(4096), 'rejected'],
        ['missing', undefined, 'absent'],
      ];
      for (const [what, bytes, state] of cases) {
        if (bytes) writeFileSync(cacheFile, bytes);
        else rmSync(cacheFile, { force: true });
        const s = await startDeployed('sessionApi');
        try {
          await sessionRoundTrip(s);
          expect({ what, codeCache: (await probe(s)).codeCache }).toEqual({ what, codeCache: state });
          // Silent: the platform's log is the user's.
          expect(s.output()).not.toMatch(/cache/i);
        } finally {
          await s.stop();
        }
      }
    } finally {
      writeFileSync(cacheFile, good);
    }
  }, 240_000);
});

/**
 * Cloud Functions builds with the runtime's Node (terraform/ deploys the newest LTS line), so the
 * code cache is made and read by the same V8. Here the bundling half of `gcp-build` runs again on
 * each supported Node from the npm registry (scripts/node-versions.js), and sessionApi starts from
 * the tree on that Node and accepts that cache.
 */
describe.each(extraNodes().map((n) => [n.major, n.bin]))('the deployed tree on Node %s', (_major, node) => {
  test('deploy/bundle.js writes a code cache this Node accepts; sessionApi serves a session from the bundle', async () => {
    // esbuild went with the prune (the buildpack's, above): the repository's stands in for this rerun.
    const bundled = spawnSync(node, ['deploy/bundle.js'], {
      cwd: tree,
      env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') },
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect({ status: bundled.status, output: `${bundled.stdout}${bundled.stderr}` }).toEqual({ status: 0, output: expect.any(String) });
    const s = await startDeployed('sessionApi', {}, node);
    try {
      expect(realpathSync(`/proc/${s.child.pid}/exe`)).toBe(realpathSync(node));
      await sessionRoundTrip(s);
      expect(await probe(s)).toEqual({ codeCache: 'accepted', datastoreFromNodeModules: 0, pubsubFromNodeModules: 0 });
    } finally {
      expect(await s.stop()).toBe(0);
    }
  }, 120_000);
});
