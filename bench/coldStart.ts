/**
 * Benchmark 4, cold start (issue 15): spawn → first 200 on `GET /session` carrying the cookie of a
 * session created beforehand, so the Datastore client is created and one lookup done, for
 *
 * - "ours": sessionApi exactly as deployed: `scripts/package-deploy.js`'s output, installed and built
 *   as Cloud Build does (`npm ci`, then `npm run gcp-build` in that directory), started with
 *   `functions-framework --target=sessionApi` from that directory, as the runtime starts it;
 * - "ours-old" (with `altRef`): the same for another commit (the build before a change);
 * - "ff-express": express-session + connect-datastore as an HTTP function under functions-framework;
 * - "express": the same app on plain Node (`node expressServer.js`).
 *
 * Stacks take turns within each round (the order rotates), so load on this shared machine falls on
 * all alike; medians of the samples and ratios come from the same run. Next to the wall time, the
 * child's own CPU time at that first 200 (process.cpuUsage() in a preload, bench/coldPreload.ts),
 * and its RSS after `rssRequests` requests (the first included).
 *
 * The built trees are kept in build/cold/<hash of the packaged files>/ and reused while the sources
 * do not change; `npm ci` there needs the registry or npm's cache. `nodeModules: 'link'` (the smoke
 * run) links the repository's node_modules and copies its dist/ instead, then runs only gcp-build's
 * bundling step: a check of the harness, not a measure.
 *
 * The require-only rows of before (a `node -e` timing one require) are kept as a diagnosis of where
 * an unbundled start spends its time; they time the repository's dist/, not the deployed bundle.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { freePort } from '../scripts/emulators';
import { cookieOf, request } from './loadgen';
import { BENCH_JS, lastJson, ROOT, runNode } from './proc';
import { median, ratio, round } from './stats';

// ---------------------------------------------------------------------------------------------
// spawn → first 200

export type ColdStackName = 'ours' | 'ours-old' | 'ff-express' | 'express';

interface SpawnSample {
  wallMs: number;
  cpuMs: number;
  rssAfterMB: number;
  codeCache: string;
}

export interface ColdStack {
  name: ColdStackName;
  what: string;
  /** Medians over the samples. */
  wallMs: number;
  cpuMs: number;
  rssAfterMB: number;
  /** What deploy/loader.js did with the code cache, per sample ('none': no loader, an unbundled start). */
  codeCache: string[];
  samples: Array<Omit<SpawnSample, 'codeCache'>>;
}

export interface ColdBuild {
  stack: ColdStackName;
  /** The directory the stack starts from (the deployed tree, or the repository for the baselines). */
  dir: string;
  /** Commit of the sources (altRef resolved), or 'working tree'. */
  source: string;
  /** Reused from an earlier run (same packaged files). */
  cached: boolean;
  buildMs?: number;
  /** package.json `main` of the deployed tree: what functions-framework loads. */
  main?: string;
}

export interface ColdSpawnResult {
  /** The Node version every stack ran on (process.version). */
  node: string;
  runs: number;
  rssRequests: number;
  stacks: ColdStack[];
  builds: ColdBuild[];
  /** Each a ratio of medians from this run: wall time unless named. */
  ratios: {
    oursVsFfExpress: number;
    oursVsExpress: number;
    cpuOursVsFfExpress: number;
    cpuOursVsExpress: number;
    oursVsOld?: number;
    cpuOursVsOld?: number;
    oldVsFfExpress?: number;
    oldVsExpress?: number;
    rssOursVsOld?: number;
  };
  /** /proc/loadavg (1, 5, 15 min) when the measurement started and when it ended. */
  load: { before: number[]; after: number[] };
}

export interface ColdStartResult {
  name: 'coldStart';
  runs: number;
  /** The goal measure: spawn → first 200. */
  spawn: ColdSpawnResult;
  /** Diagnosis: one require timed inside `node -e` (the repository's dist/, unbundled). */
  variants: ColdVariant[];
  /**
   * index.js + the runtime with its Datastore client ÷ a Datastore client alone (require + new
   * Datastore()), unbundled.
   */
  ratio: number;
  /** The same ÷ require('@google-cloud/datastore') alone (no client constructed). */
  ratioToRequireOnly: number;
  /** (index+store − framework) ÷ datastore+client: the same without what functions-framework loads for any function. */
  ratioBeyondFramework: number;
  /** The module alone (Datastore still unloaded) ÷ the Datastore client alone. */
  moduleOnlyRatio: number;
  notes: string[];
}

export interface ColdStartOptions {
  runs: number;
  project: string;
  datastoreHost: string;
  /** A commit to build and measure as "ours-old" next to the working tree (e.g. main before a change). */
  altRef?: string;
  /** Requests (the first included) after which RSS is read. */
  rssRequests: number;
  /** How the deployed trees are built: `npm ci` + `gcp-build` as Cloud Build does, or (smoke) the repository's node_modules and dist/ + the bundling step. */
  nodeModules: 'ci' | 'link';
  /** Also run the require-only rows. */
  requireRows: boolean;
  /** The Node binary the stacks run on (default: the one running the benchmark). */
  nodeBin?: string;
}

const COLD_DIR = join(ROOT, 'build', 'cold');

/**
 * The Node binary every stack of this run starts on (and the deployed tree is built with: the code
 * cache is V8's, so it is made by the Node that reads it); `nodeBin` of the options, else this one.
 */
let nodeBin = process.execPath;

function nodeVersion(bin: string): string {
  const r = spawnSync(bin, ['-p', 'process.version'], { encoding: 'utf8' });
  return r.stdout.trim();
}

/** PATH with the chosen Node first: `#!/usr/bin/env node` scripts (functions-framework, npm) run on it. */
function nodePath(): string {
  return `${dirname(nodeBin)}:${process.env.PATH ?? ''}`;
}

function runOrThrow(cmd: string, args: string[], cwd: string, what: string, env: NodeJS.ProcessEnv = process.env): void {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0)
    throw new Error(
      `${what}: ${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${(r.stdout ?? '').slice(-3000)}\n${(r.stderr ?? '').slice(-3000)}`,
    );
}

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name), base) : [relative(base, join(dir, e.name))]))
    .sort();
}

/**
 * The deployed tree of `sourceRoot` (a checkout): packaged by its own scripts/package-deploy.js,
 * then installed and built in a directory of its own, as Cloud Build would. Kept by the hash of the
 * packaged files (and how node_modules came), so an unchanged source is built once.
 */
function deployedTree(
  sourceRoot: string,
  nodeModules: 'ci' | 'link',
  log: (line: string) => void,
): { dir: string; cached: boolean; buildMs?: number } {
  runOrThrow(process.execPath, ['scripts/package-deploy.js'], sourceRoot, 'packaging');
  const packaged = join(sourceRoot, 'build', 'deploy');
  // Per Node version: gcp-build makes the bundle's code cache with the Node that builds it.
  const hash = createHash('sha256').update(nodeModules).update(nodeVersion(nodeBin));
  for (const f of listFiles(packaged))
    hash
      .update(f)
      .update('\0')
      .update(readFileSync(join(packaged, f)))
      .update('\0');
  const dir = join(COLD_DIR, `tree-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(join(dir, '.built'))) return { dir, cached: true };
  const t0 = Date.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(COLD_DIR, { recursive: true });
  cpSync(packaged, dir, { recursive: true });
  if (nodeModules === 'ci') {
    log(`  cold start: npm ci in ${relative(ROOT, dir)}`);
    const env = { ...process.env, PATH: nodePath() };
    runOrThrow('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], dir, 'npm ci of the deployed tree', env);
    log(`  cold start: npm run gcp-build in ${relative(ROOT, dir)}`);
    runOrThrow('npm', ['run', '--silent', 'gcp-build'], dir, 'gcp-build of the deployed tree', env);
  } else {
    // The smoke's shortcut: the repository's node_modules and its compiled dist/ (npm test has just
    // built it from the same sources), then gcp-build's own step, the bundle and its code cache.
    // Two tsc runs on a busy machine would take the smoke past its time limit.
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    cpSync(join(sourceRoot, 'dist'), join(dir, 'dist'), {
      recursive: true,
      filter: (src) => !src.startsWith(join(sourceRoot, 'dist', 'deploy')),
    });
    log(`  cold start: node deploy/bundle.js in ${relative(ROOT, dir)}`);
    runOrThrow(nodeBin, ['deploy/bundle.js'], dir, 'bundling of the deployed tree', { ...process.env, PATH: nodePath() });
  }
  writeFileSync(join(dir, '.built'), `${new Date().toISOString()}\n`);
  return { dir, cached: false, buildMs: Date.now() - t0 };
}

/** The sources of `ref`, extracted once into build/cold/src-<commit>/ (git archive: no work tree of git's). */
function checkout(ref: string): { dir: string; commit: string } {
  const rev = spawnSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: ROOT, encoding: 'utf8' });
  if (rev.status !== 0) throw new Error(`--cold-alt-ref ${ref}: not a commit:\n${rev.stderr}`);
  const commit = rev.stdout.trim();
  const dir = join(COLD_DIR, `src-${commit.slice(0, 12)}`);
  if (!existsSync(join(dir, '.extracted'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    runOrThrow('sh', ['-c', `git -C "${ROOT}" archive ${commit} | tar -x -C "${dir}"`], ROOT, `git archive ${commit}`);
    writeFileSync(join(dir, '.extracted'), `${commit}\n`);
  }
  return { dir, commit };
}

interface StackSpec {
  name: ColdStackName;
  what: string;
  cwd: string;
  command: string[];
  env: Record<string, string>;
  cookieName: string;
  /** Filled in by setup: the cookie (name=value) of the session every sample reads. */
  cookie?: string;
}

function killGroup(child: ChildProcess): Promise<void> {
  const exited =
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
  return exited;
}

interface Started {
  child: ChildProcess;
  port: number;
  t0: number;
  output: () => string;
}

/** Spawns the stack (own process group) and resolves when its preload reports the port open. */
async function start(spec: StackSpec): Promise<Started> {
  const port = await freePort();
  const env = {
    ...process.env,
    PATH: nodePath(),
    PORT: String(port),
    NODE_ENV: 'production',
    METADATA_SERVER_DETECTION: 'none',
    NODE_OPTIONS: `--require=${join(BENCH_JS, 'coldPreload.js')}`,
    ...spec.env,
  };
  const t0 = performance.now();
  const child = spawn(spec.command[0]!, spec.command.slice(1), {
    cwd: spec.cwd,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  let text = '';
  const collect = (b: Buffer) => void (text = (text + b.toString()).slice(-50_000));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const signal = child.stdio[3] as Readable;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${spec.name} did not listen within 60 s:\n${text}`)), 60_000);
    signal.on('data', () => (clearTimeout(timer), resolve()));
    child.once(
      'exit',
      (code, sig) => (clearTimeout(timer), reject(new Error(`${spec.name} exited (${code ?? sig}) before listening:\n${text}`))),
    );
  }).catch(async (err: unknown) => {
    await killGroup(child);
    throw err;
  });
  return { child, port, t0, output: () => text };
}

/** Creates the session every sample of `spec` reads (not measured). */
async function setup(spec: StackSpec): Promise<void> {
  const s = await start(spec);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const profile = JSON.stringify({ name: 'Cold Start', language: 'de' });
    if (spec.name === 'ours' || spec.name === 'ours-old') {
      const r = await request(new URL(`http://127.0.0.1:${s.port}`), agent, 'GET', '/session/security-key', {});
      const cookie = cookieOf(r, spec.cookieName);
      const key = r.headers['sec-x-viur-staticskey'];
      if (r.status !== 200 || !cookie || typeof key !== 'string') throw new Error(`setup of ${spec.name}: ${r.status} ${r.body}`);
      const w = await request(
        new URL(`http://127.0.0.1:${s.port}`),
        agent,
        'PUT',
        '/session/data/profile',
        { cookie, 'sec-x-viur-staticskey': key },
        profile,
      );
      if (w.status !== 200) throw new Error(`setup of ${spec.name}: ${w.status} ${w.body}`);
      spec.cookie = cookie;
    } else {
      const w = await request(new URL(`http://127.0.0.1:${s.port}`), agent, 'PUT', '/session/data/profile', {}, profile);
      const cookie = cookieOf(w, spec.cookieName);
      if (w.status !== 200 || !cookie) throw new Error(`setup of ${spec.name}: ${w.status} ${w.body}`);
      spec.cookie = cookie;
    }
    const check = await request(new URL(`http://127.0.0.1:${s.port}`), agent, 'GET', '/session', { cookie: spec.cookie });
    if (check.status !== 200 || !check.body.includes('Cold Start'))
      throw new Error(`setup of ${spec.name}: GET /session ${check.status} ${check.body}`);
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nserver output:\n${s.output().slice(-3000)}`, { cause: err });
  } finally {
    agent.destroy();
    await killGroup(s.child);
  }
}

async function sample(spec: StackSpec, rssRequests: number): Promise<SpawnSample> {
  const s = await start(spec);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await request(new URL(`http://127.0.0.1:${s.port}`), agent, 'GET', '/session', { cookie: spec.cookie! });
    const wallMs = performance.now() - s.t0;
    if (first.status !== 200 || !first.body.includes('Cold Start'))
      throw new Error(`${spec.name}: first GET /session ${first.status} ${first.body}`);
    const probe = JSON.parse((await request(new URL(`http://127.0.0.1:${s.port}`), agent, 'GET', '/__cold', {})).body) as {
      cpuMs: number;
      rss: number;
      codeCache: string;
    };
    for (let i = 1; i < rssRequests; i++) {
      const r = await request(new URL(`http://127.0.0.1:${s.port}`), agent, 'GET', '/session', { cookie: spec.cookie! });
      if (r.status !== 200) throw new Error(`${spec.name}: GET /session #${i + 1} ${r.status} ${r.body}`);
    }
    const after = JSON.parse((await request(new URL(`http://127.0.0.1:${s.port}`), agent, 'GET', '/__cold', {})).body) as { rss: number };
    return { wallMs, cpuMs: probe.cpuMs, rssAfterMB: after.rss / 2 ** 20, codeCache: probe.codeCache };
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nserver output:\n${s.output().slice(-3000)}`, { cause: err });
  } finally {
    agent.destroy();
    await killGroup(s.child);
  }
}

function frameworkBin(dir: string): string {
  const bin = join(dir, 'node_modules', '.bin', 'functions-framework');
  if (!existsSync(bin)) throw new Error(`${bin} is missing`);
  return bin;
}

const WHAT: Record<ColdStackName, string> = {
  ours: 'sessionApi as deployed: package-deploy → npm ci → gcp-build, `functions-framework --target=sessionApi` in that tree',
  'ours-old': 'the same, built from the older commit',
  'ff-express': 'express-session + connect-datastore as an HTTP function under functions-framework',
  express: 'express-session + connect-datastore on plain Node (node expressServer.js)',
};

export async function runColdSpawnBench(options: ColdStartOptions, log: (line: string) => void): Promise<ColdSpawnResult> {
  nodeBin = options.nodeBin ?? process.execPath;
  const node = nodeVersion(nodeBin);
  log(`  cold start on Node ${node}`);
  const builds: ColdBuild[] = [];
  const common = { GOOGLE_CLOUD_PROJECT: options.project, DATASTORE_EMULATOR_HOST: options.datastoreHost };
  // Named explicitly so an older build uses the same name.
  const oursCookie = `__Host-viur_cookie_${options.project}`;
  const oursSpec = (name: 'ours' | 'ours-old', dir: string): StackSpec => ({
    name,
    what: WHAT[name],
    cwd: dir,
    command: [frameworkBin(dir), '--target=sessionApi'],
    env: {
      ...common,
      SESSION_COOKIE_NAME: oursCookie,
      SESSION_NAMESPACE: `cold-${randomBytes(4).toString('hex')}`,
      FUNCTION_TARGET: 'sessionApi',
      FUNCTION_SIGNATURE_TYPE: 'http',
    },
    cookieName: oursCookie,
  });
  const main = (dir: string) => (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { main?: string }).main;

  const ours = deployedTree(ROOT, options.nodeModules, log);
  builds.push({
    stack: 'ours',
    dir: ours.dir,
    source: 'working tree',
    cached: ours.cached,
    ...(ours.buildMs !== undefined ? { buildMs: ours.buildMs } : {}),
    ...(main(ours.dir) ? { main: main(ours.dir)! } : {}),
  });
  const specs: StackSpec[] = [oursSpec('ours', ours.dir)];
  if (options.altRef) {
    const src = checkout(options.altRef);
    const old = deployedTree(src.dir, options.nodeModules, log);
    builds.push({
      stack: 'ours-old',
      dir: old.dir,
      source: src.commit,
      cached: old.cached,
      ...(old.buildMs !== undefined ? { buildMs: old.buildMs } : {}),
      ...(main(old.dir) ? { main: main(old.dir)! } : {}),
    });
    specs.push(oursSpec('ours-old', old.dir));
  }
  specs.push({
    name: 'ff-express',
    what: WHAT['ff-express'],
    cwd: ROOT,
    command: [frameworkBin(ROOT), '--target=expressSession', `--source=${join(BENCH_JS, 'expressFunction.js')}`],
    env: {
      ...common,
      BENCH_NAMESPACE: `cold-${randomBytes(4).toString('hex')}`,
      FUNCTION_TARGET: 'expressSession',
      FUNCTION_SIGNATURE_TYPE: 'http',
    },
    cookieName: 'connect.sid',
  });
  specs.push({
    name: 'express',
    what: WHAT.express,
    cwd: ROOT,
    command: [nodeBin, join(BENCH_JS, 'expressServer.js')],
    env: { ...common, BENCH_NAMESPACE: `cold-${randomBytes(4).toString('hex')}` },
    cookieName: 'connect.sid',
  });
  builds.push(
    { stack: 'ff-express', dir: ROOT, source: 'working tree', cached: true },
    { stack: 'express', dir: ROOT, source: 'working tree', cached: true },
  );

  for (const spec of specs) await setup(spec);
  const samples = new Map<ColdStackName, SpawnSample[]>(specs.map((s) => [s.name, []]));
  const before = loadavg().map((x) => round(x, 2));
  for (let i = 0; i < options.runs; i++) {
    const order = [...specs.slice(i % specs.length), ...specs.slice(0, i % specs.length)];
    for (const spec of order) {
      const s = await sample(spec, options.rssRequests);
      samples.get(spec.name)!.push(s);
      log(
        `  cold start ${i + 1}/${options.runs} ${spec.name.padEnd(10)} ${round(s.wallMs, 1)} ms, cpu ${round(s.cpuMs, 1)} ms, rss after ${options.rssRequests} ${round(s.rssAfterMB, 1)} MB, code cache ${s.codeCache}`,
      );
    }
  }
  const after = loadavg().map((x) => round(x, 2));
  const stacks: ColdStack[] = specs.map((spec) => {
    const s = samples.get(spec.name)!;
    return {
      name: spec.name,
      what: spec.what,
      wallMs: round(median(s.map((x) => x.wallMs)), 1),
      cpuMs: round(median(s.map((x) => x.cpuMs)), 1),
      rssAfterMB: round(median(s.map((x) => x.rssAfterMB)), 1),
      codeCache: s.map((x) => x.codeCache),
      samples: s.map((x) => ({ wallMs: round(x.wallMs, 1), cpuMs: round(x.cpuMs, 1), rssAfterMB: round(x.rssAfterMB, 1) })),
    };
  });
  const get = (n: ColdStackName) => stacks.find((x) => x.name === n);
  const o = get('ours')!;
  const ff = get('ff-express')!;
  const ex = get('express')!;
  const old = get('ours-old');
  return {
    node,
    runs: options.runs,
    rssRequests: options.rssRequests,
    stacks,
    builds,
    ratios: {
      oursVsFfExpress: ratio(o.wallMs, ff.wallMs),
      oursVsExpress: ratio(o.wallMs, ex.wallMs),
      cpuOursVsFfExpress: ratio(o.cpuMs, ff.cpuMs),
      cpuOursVsExpress: ratio(o.cpuMs, ex.cpuMs),
      ...(old
        ? {
            oursVsOld: ratio(o.wallMs, old.wallMs),
            cpuOursVsOld: ratio(o.cpuMs, old.cpuMs),
            oldVsFfExpress: ratio(old.wallMs, ff.wallMs),
            oldVsExpress: ratio(old.wallMs, ex.wallMs),
            rssOursVsOld: ratio(o.rssAfterMB, old.rssAfterMB),
          }
        : {}),
    },
    load: { before, after },
  };
}

// ---------------------------------------------------------------------------------------------
// require-only rows (diagnosis)

interface Sample {
  requireMs: number;
  sinceStartMs: number;
  modules: number;
  pubsubModules: number;
  datastoreModules: number;
}

export interface ColdVariant {
  name: string;
  what: string;
  requireMs: number;
  sinceStartMs: number;
  modules: number;
  loadsPubsub: boolean;
  loadsDatastore: boolean;
  samples: number[];
}

const VARIANTS: Array<{ name: string; what: string; code: string }> = [
  { name: 'datastore', what: "require('@google-cloud/datastore')", code: "require('@google-cloud/datastore')" },
  {
    name: 'datastore+client',
    what: "require('@google-cloud/datastore') + new Datastore()",
    code: "new (require('@google-cloud/datastore').Datastore)({ projectId: process.env.GOOGLE_CLOUD_PROJECT })",
  },
  {
    name: 'framework',
    what: "functions-framework's server module (express, body parsers): what its main.js loads for any function",
    code: "require('./node_modules/@google-cloud/functions-framework/build/src/server.js')",
  },
  {
    name: 'index',
    what: "require('./dist/functions/index.js') (registers all three functions)",
    code: "require('./dist/functions/index.js')",
  },
  {
    name: 'index+store',
    what: 'the same + the runtime the first request builds (Datastore client loaded and constructed)',
    code: "require('./dist/functions/index.js'); require('./dist/lib/setup/runtime').runtime()",
  },
];

function script(code: string): string {
  return [
    'const t0 = process.hrtime.bigint();',
    code + ';',
    'const requireMs = Number(process.hrtime.bigint() - t0) / 1e6;',
    'const sinceStartMs = performance.now();',
    'const keys = Object.keys(require.cache);',
    'const has = (s) => keys.filter((k) => k.includes(s)).length;',
    "console.log(JSON.stringify({ requireMs, sinceStartMs, modules: keys.length, pubsubModules: has('/@google-cloud/pubsub/'), datastoreModules: has('/@google-cloud/datastore/') }));",
  ].join('\n');
}

async function runRequireRows(options: ColdStartOptions): Promise<ColdVariant[]> {
  const samples = new Map<string, Sample[]>(VARIANTS.map((v) => [v.name, []]));
  const env = { GOOGLE_CLOUD_PROJECT: options.project, DATASTORE_EMULATOR_HOST: options.datastoreHost, SESSION_NAMESPACE: 'bench-cold' };
  for (let i = 0; i < options.runs; i++) {
    for (const v of i % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
      const { stdout, stderr, code } = await runNode(['-e', script(v.code)], env, 60_000);
      if (code !== 0) throw new Error(`cold start ${v.name} failed (${code}):\n${stderr}`);
      samples.get(v.name)!.push(lastJson<Sample>(stdout));
    }
  }
  return VARIANTS.map((v) => {
    const s = samples.get(v.name)!;
    return {
      name: v.name,
      what: v.what,
      requireMs: round(median(s.map((x) => x.requireMs)), 1),
      sinceStartMs: round(median(s.map((x) => x.sinceStartMs)), 1),
      modules: Math.max(...s.map((x) => x.modules)),
      loadsPubsub: s.some((x) => x.pubsubModules > 0),
      loadsDatastore: s.some((x) => x.datastoreModules > 0),
      samples: s.map((x) => round(x.requireMs, 1)),
    };
  });
}

export async function runColdStartBench(
  options: ColdStartOptions,
  log: (line: string) => void = () => undefined,
): Promise<ColdStartResult> {
  const spawnResult = await runColdSpawnBench(options, log);
  const variants = options.requireRows ? await runRequireRows(options) : [];
  const get = (n: string) => variants.find((v) => v.name === n);
  const r = (a?: ColdVariant, b?: ColdVariant) => (a && b ? ratio(a.requireMs, b.requireMs) : NaN);
  const fw = get('framework');
  const is = get('index+store');
  const dc = get('datastore+client');
  return {
    name: 'coldStart',
    runs: options.runs,
    spawn: spawnResult,
    variants,
    ratio: r(is, dc),
    ratioToRequireOnly: r(is, get('datastore')),
    ratioBeyondFramework: fw && is && dc ? ratio(is.requireMs - fw.requireMs, dc.requireMs) : NaN,
    moduleOnlyRatio: r(get('index'), get('datastore')),
    notes: [
      `spawn → first 200: medians of ${options.runs} fresh processes per stack, interleaved (order rotating); CPU is the child's own (user + system) at its first 200; RSS after ${options.rssRequests} sequential GET /session on one keep-alive connection.`,
      "The request is sent when the server reports its port open (a line on fd 3 from the preload), as the platform's startup probe would; the first GET /session reads a session created beforehand by a start of the same build (the Datastore client is created and one lookup done).",
      "ours starts from its deployed tree with that tree's node_modules (npm ci of the lockfile); the baselines from the repository with the same lockfile's packages.",
      "Require-only rows (variants): the repository's unbundled dist/ timed inside `node -e`; they show where an unbundled start spends its time and are not the goal measure.",
    ],
  };
}
