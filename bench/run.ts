/**
 * `npm run bench`: starts the emulators the benchmarks need (its own, on free ports, stopped at the
 * end with their process groups), runs each benchmark, prints a table and writes the JSON results
 * to bench/results/. Every figure that matters is a ratio against a baseline measured in the same
 * run on the same emulator.
 *
 *   npm run bench                      # everything, full sizes
 *   npm run bench -- --only=request,coldStart --repeats=5
 *   npm run bench -- --only=request --mix=read-mostly
 *   npm run bench -- --smoke           # tiny sizes: checks the harness, not the numbers
 *
 * --datastore-host / --pubsub-host / --legacy-datastore-host use running emulators instead of starting new ones.
 * --rtt=8 --jitter=2 (the defaults) are the production-latency mode's ("latency") added round trip: every
 * stack reaches the legacy Datastore emulator (--latency-emulator=legacy|firestore) through a relay of its
 * own that delays each direction by rtt/2 ± jitter/2 and counts the RPCs at the wire.
 * --alt-source=DIR/functions/index.js runs another build of sessionApi next to this one ("ours-alt"),
 * e.g. the commit before a change, built with `git worktree add /tmp/old <commit> && …`.
 * --cold-alt-ref=COMMIT packages, installs and builds that commit as deployed and measures its cold
 * start ("ours-old") next to the working tree's; --cold-runs=N samples per stack (default 9).
 * --server-node=24|22|current: the Node every server of the request and latency benchmarks runs on;
 * default the deployed runtime (Terraform's nodejs_runtime, nodejs24).
 * --rate=300[,100…]: also run the request and latency benchmarks in an OPEN loop at each of these
 * arrival rates (requests/s per stack; latency from each request's scheduled send time) on
 * --open-clients sessions (default 64); default 300 in a full run (--rate= turns it off);
 * --loop=open leaves the closed loop out. The smoke runs the latency benchmark's open loop at 50/s.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Emulator, startEmulator } from '../scripts/emulators';
import { type ColdSpawnResult, runColdSpawnBench, runColdStartBench, type ColdStartResult } from './coldStart';
import { type CleanupBenchResult, type KillBenchResult, runCleanupBench, runKillBench } from './external';
import { RelaySet } from './latencyRelay';
import { ROOT } from './proc';
import { runRequestBench, type RequestBenchResult } from './request';
import { resolveServerNode, type ServerNode } from './serverNode';
import { formatTable } from './table';

export const BENCHMARKS = ['request', 'latency', 'cleanup', 'kill', 'coldStart'] as const;
export type BenchName = (typeof BENCHMARKS)[number];

export interface BenchReport {
  startedAt: string;
  smoke: boolean;
  machine: { nproc: number; memoryGiB: number; node: string; platform: string; serverNode?: string };
  results: {
    request?: RequestBenchResult;
    /** The production-latency mode: the request benchmark through relays that add a round trip. */
    latency?: RequestBenchResult;
    cleanup?: CleanupBenchResult;
    kill?: KillBenchResult;
    coldStart?: ColdStartResult;
    /** Cold start on the other Node majors of --cold-node (the first one's is coldStart). */
    coldStartOtherNodes?: ColdSpawnResult[];
  };
  errors: Array<{ benchmark: string; error: string }>;
  /** `uptime`'s load averages (1, 5, 15 min) when each benchmark started and ended: how busy the shared machine was. */
  load: Record<string, { start: number[]; end: number[] }>;
  elapsedMs: number;
}

interface Options {
  smoke: boolean;
  only: BenchName[];
  repeats: number;
  datastoreHost?: string;
  pubsubHost?: string;
  legacyDatastoreHost?: string;
  out?: string;
  mix?: string;
  altSource?: string;
  coldAltRef?: string;
  coldRuns: number;
  coldNodes: string[];
  readCacheMs: number;
  cleanupBacklog: number;
  skipSizes: boolean;
  cleanupLegacy: boolean;
  rttMs: number;
  jitterMs: number;
  latencyEmulator: 'legacy' | 'firestore';
  serverNode: string | undefined;
  /** Open-loop rates of the request benchmark and of the latency benchmark (requests/s per stack). */
  requestRates: number[];
  latencyRates: number[];
  closed: boolean;
  openClients: number;
  openRequests: number;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: 'boolean', default: false },
      only: { type: 'string' },
      repeats: { type: 'string' },
      'datastore-host': { type: 'string' },
      'pubsub-host': { type: 'string' },
      'legacy-datastore-host': { type: 'string' },
      out: { type: 'string' },
      mix: { type: 'string' },
      'alt-source': { type: 'string' },
      'cold-alt-ref': { type: 'string' },
      'cold-runs': { type: 'string' },
      // Node majors the cold start runs on, the deployed one (Terraform's nodejs_runtime default) first;
      // "current" is the Node running the benchmark. Binaries from scripts/node-versions.js (.local/).
      'cold-node': { type: 'string' },
      // SESSION_READ_CACHE_MS of the "ours-cache" stack; 0 leaves it out.
      'read-cache-ms': { type: 'string' },
      // Expired sessions of the cleanup benchmark's engine-only run (default 80,000; 0 skips it).
      'cleanup-backlog': { type: 'string' },
      // Leave the size curve out of the request benchmark (a quicker A/B of one change).
      'skip-sizes': { type: 'boolean', default: false },
      // Leave out the cleanup backlog's second run on the legacy emulator.
      'skip-cleanup-legacy': { type: 'boolean', default: false },
      // Production-latency mode (the "latency" benchmark): round trip and jitter every stack's relay adds, ms.
      rtt: { type: 'string' },
      jitter: { type: 'string' },
      // The emulator behind the relays: legacy (transactions opened by their lookup, production's path) or firestore.
      'latency-emulator': { type: 'string' },
      // The Node every server stack runs on: a major (24, 22) or "current"; default the deployed one.
      'server-node': { type: 'string' },
      // Open loop: arrival rates (requests/s per stack), comma-separated; --loop=open skips the closed loop.
      rate: { type: 'string' },
      loop: { type: 'string' },
      'open-clients': { type: 'string' },
      'open-requests': { type: 'string' },
    },
    strict: true,
  });
  const only = (values.only ?? BENCHMARKS.join(',')).split(',').map((s) => s.trim());
  for (const o of only)
    if (!(BENCHMARKS as readonly string[]).includes(o)) throw new Error(`--only: unknown benchmark ${o} (known: ${BENCHMARKS.join(', ')})`);
  const repeats = Number(values.repeats ?? (values.smoke ? 1 : 3));
  if (!Number.isInteger(repeats) || repeats < 1 || repeats > 20) throw new Error('--repeats must be an integer from 1 to 20');
  const rttMs = Number(values.rtt ?? (values.smoke ? 2 : 8));
  const jitterMs = Number(values.jitter ?? (values.smoke ? 0 : 2));
  if (!(rttMs >= 0 && rttMs <= 1000 && jitterMs >= 0 && jitterMs <= rttMs)) throw new Error('--rtt must be 0–1000 ms and --jitter 0–rtt');
  const latencyEmulator = values['latency-emulator'] ?? 'legacy';
  if (latencyEmulator !== 'legacy' && latencyEmulator !== 'firestore') throw new Error('--latency-emulator must be legacy or firestore');
  // The full run measures both loops: the closed one (saturation) and an open loop at 300 requests/s
  // per stack (below it, what production's percentiles look like); --rate= with nothing turns it off.
  const rates = (values.rate ?? (values.smoke ? '' : '300'))
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
    .map(Number);
  if (rates.some((r) => !(r > 0 && r <= 5000))) throw new Error('--rate must be requests per second, each 1–5000');
  const loop = values.loop ?? (rates.length > 0 ? 'both' : 'closed');
  if (loop !== 'closed' && loop !== 'open' && loop !== 'both') throw new Error('--loop must be closed, open or both');
  if (loop !== 'closed' && rates.length === 0 && !values.smoke) throw new Error('--loop=open/both needs --rate');
  const openClients = Number(values['open-clients'] ?? (values.smoke ? 4 : 64));
  const openRequests = Number(values['open-requests'] ?? (values.smoke ? 20 : 3000));
  if (!Number.isInteger(openClients) || openClients < 1 || !Number.isInteger(openRequests) || openRequests < 1)
    throw new Error('--open-clients and --open-requests must be positive integers');
  const coldRuns = Number(values['cold-runs'] ?? (values.smoke ? 1 : 9));
  if (!Number.isInteger(coldRuns) || coldRuns < 1 || coldRuns > 50) throw new Error('--cold-runs must be an integer from 1 to 50');
  return {
    smoke: values.smoke,
    only: only as BenchName[],
    repeats,
    datastoreHost: values['datastore-host'],
    pubsubHost: values['pubsub-host'],
    legacyDatastoreHost: values['legacy-datastore-host'],
    out: values.out,
    mix: values.mix,
    altSource: values['alt-source'],
    ...(values['cold-alt-ref'] ? { coldAltRef: values['cold-alt-ref'] } : {}),
    coldRuns,
    coldNodes: (values['cold-node'] ?? (values.smoke ? 'current' : '24,22')).split(',').map((x) => x.trim()),
    readCacheMs: Number(values['read-cache-ms'] ?? 1000),
    cleanupBacklog: Number(values['cleanup-backlog'] ?? (values.smoke ? 30 : 80_000)),
    skipSizes: values['skip-sizes'],
    cleanupLegacy: !values['skip-cleanup-legacy'] && !values.smoke,
    rttMs,
    jitterMs,
    latencyEmulator,
    serverNode: values['server-node'],
    requestRates: loop === 'closed' ? [] : rates,
    // The smoke runs a tiny open loop on the latency benchmark, so that the mode is exercised too.
    latencyRates: rates.length > 0 ? (loop === 'closed' ? [] : rates) : values.smoke && values.loop === undefined ? [50] : [],
    closed: loop !== 'open',
    openClients,
    openRequests,
  };
}

/** The Node binary of each major ("current": undefined, the Node running this), installed by scripts/node-versions.js. */
function nodeBinaries(majors: string[]): Array<string | undefined> {
  if (majors.every((m) => m === 'current')) return majors.map(() => undefined);
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'node-versions.js'), '--json'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/node-versions.js failed:\n${r.stderr}`);
  const bins = JSON.parse(r.stdout) as Record<string, string>;
  return majors.map((m) => {
    if (m === 'current') return undefined;
    if (!bins[m]) throw new Error(`--cold-node: no Node ${m} (scripts/node-versions.js has ${Object.keys(bins).join(', ')})`);
    return bins[m];
  });
}

export async function main(argv: string[]): Promise<BenchReport> {
  const opts = options(argv);
  const started = Date.now();
  const project = 'session-bench';
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const emulators: Emulator[] = [];
  const report: BenchReport = {
    startedAt: new Date(started).toISOString(),
    smoke: opts.smoke,
    machine: {
      nproc: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
    },
    results: {},
    errors: [],
    load: {},
    elapsedMs: 0,
  };
  // Resolved once (installs the binary when missing), only for the benchmarks that start servers.
  let serverNode: ServerNode | undefined;
  const serverNodeOnce = (): ServerNode => {
    if (!serverNode) {
      serverNode = resolveServerNode(opts.serverNode);
      report.machine.serverNode = serverNode.version;
      log(`server stacks run on Node ${serverNode.version} (${serverNode.bin})`);
    }
    return serverNode;
  };
  // Ctrl-C: stop the emulators before leaving (children of proc.ts are killed on exit).
  const onSignal = () => {
    void Promise.all(emulators.map((e) => e.stop())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const needsDatastore = opts.only.length > 0;
    const needsPubsub = opts.only.includes('kill');
    let datastoreHost = opts.datastoreHost;
    let datastorePgid: number | undefined;
    let pubsubHost = opts.pubsubHost;
    const starting: Array<Promise<void>> = [];
    if (needsDatastore && !datastoreHost) {
      starting.push(startEmulator('datastore').then((e) => void (emulators.push(e), (datastoreHost = e.host), (datastorePgid = e.pid))));
    }
    if (needsPubsub && !pubsubHost) {
      starting.push(startEmulator('pubsub').then((e) => void (emulators.push(e), (pubsubHost = e.host))));
    }
    await Promise.all(starting);
    log(`emulators: datastore ${datastoreHost ?? '-'} pubsub ${pubsubHost ?? '-'}`);
    // The in-process benchmarks (cleanup, kill's publisher) use the standard client switches.
    if (datastoreHost) process.env.DATASTORE_EMULATOR_HOST = datastoreHost;
    if (pubsubHost) process.env.PUBSUB_EMULATOR_HOST = pubsubHost;
    process.env.GOOGLE_CLOUD_PROJECT = project;
    process.env.METADATA_SERVER_DETECTION = 'none';

    // The legacy Datastore emulator (latency mode, cleanup's second backlog run): started once, on first use.
    let legacy: { host: string; pgid?: number } | undefined = opts.legacyDatastoreHost ? { host: opts.legacyDatastoreHost } : undefined;
    const legacyEmulator = async (): Promise<{ host: string; pgid?: number }> => {
      if (!legacy) {
        const e = await startEmulator('datastore-legacy');
        emulators.push(e);
        legacy = { host: e.host, pgid: e.pid };
      }
      return legacy;
    };
    const attempt = async (name: BenchName, run: () => Promise<void>) => {
      if (!opts.only.includes(name)) return;
      const start = loadavg().map((l) => Math.round(l * 100) / 100);
      log(`${name}… (load average ${start.join(' ')})`);
      const t0 = Date.now();
      try {
        await run();
        log(`${name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      } catch (err) {
        report.errors.push({ benchmark: name, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
        log(`${name} FAILED: ${err instanceof Error ? err.message : String(err)}`);
      }
      report.load[name] = { start, end: loadavg().map((l) => Math.round(l * 100) / 100) };
    };

    await attempt('request', async () => {
      report.results.request = await runRequestBench(
        {
          datastoreHost: datastoreHost!,
          ...(datastorePgid !== undefined ? { emulatorPgid: datastorePgid } : {}),
          project,
          clients: opts.smoke ? 2 : 16,
          requests: opts.smoke ? 20 : 3000,
          warmup: opts.smoke ? 4 : 600,
          probe: opts.smoke ? 2 : 20,
          repeats: opts.repeats,
          // The smoke runs one mix (half writes, so both kinds are exercised) on two stacks: it checks the harness, not the numbers.
          ffBaseline: !opts.smoke,
          warmupRound: !opts.smoke,
          ...(opts.altSource ? { altSource: opts.altSource } : {}),
          ...(opts.readCacheMs > 0 ? { readCacheMs: opts.readCacheMs } : {}),
          serverNode: serverNodeOnce(),
          closed: opts.closed,
          ...(opts.requestRates.length > 0
            ? { open: { rates: opts.requestRates, clients: opts.openClients, requests: opts.openRequests, warmup: opts.smoke ? 4 : 600 } }
            : {}),
          // 1 → 10,000 keys (the default SESSION_MAX_DATA_KEYS counts the profile and counter too), 1 KB → 700 KB.
          sizes: opts.skipSizes
            ? []
            : opts.smoke
              ? [{ keys: 100, bytes: 10_000 }]
              : [
                  { keys: 1, bytes: 1_000 },
                  { keys: 100, bytes: 10_000 },
                  { keys: 1_000, bytes: 100_000 },
                  { keys: 9_998, bytes: 700_000 },
                  { keys: 1, bytes: 700_000 },
                ],
          sizeRequests: opts.smoke ? 10 : 400,
          sizeRepeats: opts.smoke ? 1 : 3,
          mixes: opts.smoke
            ? [{ name: 'write-heavy', writeRatio: 0.5 }]
            : [
                { name: 'read-mostly', writeRatio: 0.1 },
                { name: 'write-heavy', writeRatio: 0.5 },
              ].filter((m) => opts.mix === undefined || m.name === opts.mix),
        },
        log,
      );
    });
    await attempt('latency', async () => {
      if (opts.rttMs <= 0) throw new Error('the latency benchmark needs --rtt > 0');
      // The legacy emulator: a transaction opened by its first lookup, production's path (a change = lookup + commit).
      let target = datastoreHost!;
      let pgid = datastorePgid;
      if (opts.latencyEmulator === 'legacy') ({ host: target, pgid } = await legacyEmulator());
      report.results.latency = await runRequestBench(
        {
          datastoreHost: target,
          ...(pgid !== undefined ? { emulatorPgid: pgid } : {}),
          project: opts.latencyEmulator === 'legacy' ? 'session-test' : project,
          clients: opts.smoke ? 2 : 16,
          requests: opts.smoke ? 20 : 3000,
          warmup: opts.smoke ? 4 : 600,
          probe: opts.smoke ? 2 : 20,
          repeats: opts.repeats,
          ffBaseline: !opts.smoke,
          warmupRound: !opts.smoke,
          relays: new RelaySet(target, { rttMs: opts.rttMs, jitterMs: opts.jitterMs }),
          ...(opts.latencyEmulator === 'legacy' ? { oursEnv: { DATASTORE_EMULATOR_TRANSACTIONS: 'lookup' } } : {}),
          latency: { rttMs: opts.rttMs, jitterMs: opts.jitterMs, emulator: opts.latencyEmulator },
          ...(opts.readCacheMs > 0 ? { readCacheMs: opts.readCacheMs } : {}),
          serverNode: serverNodeOnce(),
          closed: opts.closed,
          ...(opts.latencyRates.length > 0
            ? { open: { rates: opts.latencyRates, clients: opts.openClients, requests: opts.openRequests, warmup: opts.smoke ? 4 : 600 } }
            : {}),
          sizes: [],
          mixes: opts.smoke
            ? [{ name: 'write-heavy', writeRatio: 0.5 }]
            : [
                { name: 'read-mostly', writeRatio: 0.1 },
                { name: 'write-heavy', writeRatio: 0.5 },
              ].filter((m) => opts.mix === undefined || m.name === opts.mix),
        },
        log,
      );
    });
    const scriptEnv = {
      DATASTORE_EMULATOR_HOST: datastoreHost ?? '',
      PUBSUB_EMULATOR_HOST: pubsubHost ?? '',
      GOOGLE_CLOUD_PROJECT: project,
    };
    await attempt('cleanup', async () => {
      report.results.cleanup = await runCleanupBench(
        // The one-at-a-time loop runs on fewer sessions (it is ~100× slower); compared per entity.
        {
          sessions: opts.smoke ? 50 : 20_000,
          rounds: opts.smoke ? 1 : opts.repeats,
          oneAtATime: opts.smoke ? 20 : 2000,
          backlog: opts.cleanupBacklog,
          env: scriptEnv,
          // The backlog once more on the legacy emulator (engine only): is the rising rate the emulator's?
          ...(opts.cleanupLegacy
            ? { legacyEnv: { ...scriptEnv, DATASTORE_EMULATOR_HOST: (await legacyEmulator()).host, GOOGLE_CLOUD_PROJECT: 'session-test' } }
            : {}),
        },
        log,
      );
    });
    await attempt('kill', async () => {
      report.results.kill = await runKillBench(
        {
          latencySessions: 10,
          latencyRounds: opts.smoke ? 1 : 5,
          sessions: opts.smoke ? 10 : 5000,
          rounds: opts.smoke ? 1 : opts.repeats,
          env: scriptEnv,
        },
        log,
      );
    });
    await attempt('coldStart', async () => {
      const bins = nodeBinaries(opts.coldNodes);
      report.results.coldStart = await runColdStartBench(
        {
          ...(bins[0] ? { nodeBin: bins[0] } : {}),
          runs: opts.coldRuns,
          project,
          datastoreHost: datastoreHost!,
          ...(opts.coldAltRef ? { altRef: opts.coldAltRef } : {}),
          rssRequests: opts.smoke ? 20 : 1000,
          // The smoke links the repository's node_modules into the deployed tree instead of `npm ci` (minutes, and the registry).
          nodeModules: opts.smoke ? 'link' : 'ci',
          requireRows: true,
        },
        log,
      );
      for (const bin of bins.slice(1)) {
        (report.results.coldStartOtherNodes ??= []).push(
          await runColdSpawnBench(
            {
              runs: opts.coldRuns,
              project,
              datastoreHost: datastoreHost!,
              rssRequests: opts.smoke ? 20 : 1000,
              nodeModules: opts.smoke ? 'link' : 'ci',
              requireRows: false,
              ...(bin ? { nodeBin: bin } : {}),
            },
            log,
          ),
        );
      }
    });
  } finally {
    await Promise.all(emulators.map((e) => e.stop()));
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  report.elapsedMs = Date.now() - started;
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const out = opts.out ?? join(dir, `${opts.smoke ? 'smoke' : 'bench'}-${report.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(formatTable(report) + '\n');
  log(`results: ${out}`);
  return report;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (report) => {
      process.exitCode = report.errors.length > 0 ? 1 : 0;
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack : String(err));
      process.exitCode = 1;
    },
  );
}
