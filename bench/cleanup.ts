/**
 * Benchmark (not a test): cleanup of N expired sessions (default 20,000) with the batch-deletion
 * engine next to a plain sequential loop (keys-only query of 500, delete them, repeat), on the same
 * Firestore emulator (Datastore mode) in the same run, alternating the order over several rounds.
 * Also records memory: RSS and heap before and at their peak during each run. A third method, one
 * entity at a time (how the original deleted: iterate the query, one delete per entity), runs on
 * fewer sessions (--one-at-a-time, default 2,000; 0 skips it) and is compared per entity.
 *
 *   npx tsc -p bench/tsconfig.json && node dist-bench/bench/cleanup.js [--sessions N] [--rounds R]
 *
 * Starts its own emulator unless DATASTORE_EMULATOR_HOST is set.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import { Datastore } from '@google-cloud/datastore';
import { type Emulator, startEmulator } from '../scripts/emulators';
import { batchDelete, expiredSelector } from '../lib/jobs/batchDelete';
import { systemClock } from '../lib/core/clock';
import { type Config, loadConfig } from '../lib/setup/config';
import { DatastoreSessionStore } from '../lib/store/datastoreStore';
import { createStore } from '../lib/setup/runtime';
import { emptyData } from '../lib/core/json';
import type { SessionStore, StoredSession } from '../lib/store/sessionStore';
import { plainDeleteLoop } from './plainDelete';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    parallelism: { type: 'string' },
    'one-at-a-time': { type: 'string', default: '2000' },
    // engine,plain (default) or engine alone (the plain loop is quadratic on a large backlog).
    methods: { type: 'string', default: 'engine,plain' },
    // Internal: run one measured deletion in this (fresh) process.
    child: { type: 'string' },
    namespace: { type: 'string' },
  },
});
const N = Number(values.sessions);
const ROUNDS = Number(values.rounds);
const PARALLELISM = Number(values.parallelism ?? 4);
const SINGLE_N = Number(values['one-at-a-time']);
const NOW = Date.now();
const MB = 1024 * 1024;

function store(ds: Datastore, namespace: string): DatastoreSessionStore {
  return new DatastoreSessionStore({ datastore: ds, kind: 'viur-session', namespace, timeoutMs: 60_000, separateBegin: true });
}

function session(i: number): StoredSession {
  return {
    data: emptyData(),
    user: `user-${i % 1000}`,
    lastSeen: NOW - 3 * 3600_000,
    createdAt: NOW - 3 * 3600_000,
    expiresAt: NOW - 3600_000 - i,
    staticKeyDigest: 'ab'.repeat(32),
    securityKeyDigests: [],
    userAgent: null,
  };
}

/** Seeds in commits of 500, four at a time (seeding is not what is measured). */
async function seed(s: SessionStore, n: number): Promise<void> {
  const prefix = randomBytes(8).toString('hex');
  const chunks: number[] = [];
  for (let i = 0; i < n; i += 500) chunks.push(i);
  for (let c = 0; c < chunks.length; c += 4) {
    await Promise.all(
      chunks.slice(c, c + 4).map((start) => {
        const put = Array.from({ length: Math.min(500, n - start) }, (_, j) => ({
          key: `${prefix}-${start + j}`,
          session: session(start + j),
        }));
        return s.update(null, () => ({ writes: { put, delete: [] }, result: undefined }));
      }),
    );
  }
}

/** The baseline: what one would write without the engine. */
function plainLoop(s: SessionStore): Promise<number> {
  return plainDeleteLoop(s, expiredSelector(Date.now(), 300));
}

/**
 * The original's way (ViUR walks the query and deletes each entity on its own): one commit per
 * entity. The keys come from keys-only pages of 500 taken by cursor, which flatters this baseline a
 * little (the original fetched whole entities).
 */
async function oneAtATime(s: SessionStore): Promise<number> {
  const selector = expiredSelector(Date.now(), 300);
  let deleted = 0;
  let cursor: string | undefined;
  for (let i = 0; i < 1_000_000; i++) {
    const page = await s.findKeys(selector, 500, cursor);
    for (const key of page.keys) {
      await s.deleteMany([key]);
      deleted++;
    }
    if (page.cursor === undefined) break;
    cursor = page.cursor;
  }
  return deleted;
}

/** Deletion rate (sessions/s) in each quarter of the run: a steady rate has them close together. */
let quarterRates: number[] = [];
/** Median time of the engine's keys-only queries and of its delete commits in each quarter: which of the two moves the rate. */
let quarterQueryMs: number[] = [];
let quarterDeleteMs: number[] = [];

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

/** The store with its two engine calls timed (the class keeps private fields, so calls go to the target itself). */
function timedStore(s: SessionStore, t0: number, calls: Array<{ kind: 'query' | 'delete'; end: number; ms: number }>): SessionStore {
  return new Proxy(s, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => Promise<unknown>;
      if (prop !== 'findKeys' && prop !== 'deleteMany') return fn.bind(target);
      return async (...args: unknown[]) => {
        const start = performance.now();
        try {
          return await fn.apply(target, args);
        } finally {
          calls.push({ kind: prop === 'findKeys' ? 'query' : 'delete', end: Date.now() - t0, ms: performance.now() - start });
        }
      };
    },
  });
}

/**
 * The engine as deployed: the store the runtime builds from the default configuration (its
 * deadlines and retries) and the default batch size and parallelism, on this run's namespace.
 */
async function engine(s: SessionStore, config: Config): Promise<number> {
  const marks: Array<[ms: number, deleted: number]> = [];
  const t0 = Date.now();
  const calls: Array<{ kind: 'query' | 'delete'; end: number; ms: number }> = [];
  const report = await batchDelete({
    store: timedStore(s, t0, calls),
    selector: expiredSelector(Date.now(), config.deletion.cleanupGraceSeconds),
    batchSize: config.deletion.batchSize,
    parallelism: values.parallelism === undefined ? config.deletion.parallelism : PARALLELISM,
    deadline: Date.now() + 3600_000,
    clock: systemClock,
    onBatch: (p) => marks.push([Date.now() - t0, p.deleted]),
  });
  if (!report.done) throw new Error('engine did not finish');
  const bounds = [1, 2, 3, 4].map((q) => {
    const lo = marks.find(([, d]) => d >= (report.deleted * (q - 1)) / 4) ?? [0, 0];
    const hi = marks.find(([, d]) => d >= (report.deleted * q) / 4) ?? marks.at(-1)!;
    return { lo, hi };
  });
  quarterRates = bounds.map(({ lo, hi }) => Math.round(((hi[1] - lo[1]) / Math.max(1, hi[0] - lo[0])) * 1000));
  const inQuarter = (kind: 'query' | 'delete', q: number) =>
    calls
      .filter((c) => c.kind === kind && (q === 0 ? c.end <= bounds[0]!.hi[0] : c.end > bounds[q - 1]!.hi[0] && c.end <= bounds[q]!.hi[0]))
      .map((c) => c.ms);
  quarterQueryMs = [0, 1, 2, 3].map((q) => Math.round(medianOf(inQuarter('query', q))));
  quarterDeleteMs = [0, 1, 2, 3].map((q) => Math.round(medianOf(inQuarter('delete', q))));
  return report.deleted;
}

interface Measurement {
  method: string;
  round: number;
  ms: number;
  deleted: number;
  rssBeforeMB: number;
  rssPeakMB: number;
  heapBeforeMB: number;
  heapPeakMB: number;
  /** heapUsed after the run and a forced GC, minus before: what the run left behind. */
  heapRetainedMB: number;
  /** V8's heap limit in the child: from the machine's memory, or the cgroup's (BENCH_CHILD_CGROUP). */
  heapLimitMB: number;
  /** Engine only: sessions/s in each quarter of the run. */
  quarterRates?: number[];
  /** Engine only: median ms of a keys-only query page / of a delete commit, per quarter. */
  quarterQueryMs?: number[];
  quarterDeleteMs?: number[];
}

/**
 * One measured deletion, run in a fresh child process so that its memory figures are its own: the
 * parent has just seeded thousands of sessions, which would dominate RSS. The child connects and
 * issues one query first (not measured), so the figures are the deletion's, not the client's start-up.
 */
type Method = 'engine' | 'plain' | 'single';

async function child(method: Method, namespace: string): Promise<void> {
  const config = loadConfig({ GOOGLE_CLOUD_PROJECT: 'session-bench', ...process.env, SESSION_NAMESPACE: namespace });
  const s = method === 'engine' ? createStore(config) : store(new Datastore({ projectId: config.projectId }), namespace);
  await s.findKeys({ kind: 'expired', before: 0 }, 1);
  global.gc?.();
  const before = process.memoryUsage();
  let rssPeak = before.rss;
  let heapPeak = before.heapUsed;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    rssPeak = Math.max(rssPeak, m.rss);
    heapPeak = Math.max(heapPeak, m.heapUsed);
  }, 10);
  const t0 = performance.now();
  const deleted = method === 'engine' ? await engine(s, config) : method === 'plain' ? await plainLoop(s) : await oneAtATime(s);
  const ms = performance.now() - t0;
  clearInterval(sampler);
  const after = process.memoryUsage();
  global.gc?.();
  const retained = process.memoryUsage();
  console.log(
    JSON.stringify({
      ms: Math.round(ms),
      deleted,
      heapRetainedMB: +((retained.heapUsed - before.heapUsed) / MB).toFixed(1),
      rssBeforeMB: +(before.rss / MB).toFixed(1),
      rssPeakMB: +(Math.max(rssPeak, after.rss) / MB).toFixed(1),
      heapBeforeMB: +(before.heapUsed / MB).toFixed(1),
      heapLimitMB: Math.round(getHeapStatistics().heap_size_limit / MB),
      ...(method === 'engine' ? { quarterRates, quarterQueryMs, quarterDeleteMs } : {}),
      heapPeakMB: +(Math.max(heapPeak, after.heapUsed) / MB).toFixed(1),
    }),
  );
}

function runChild(method: Method, namespace: string): Promise<Omit<Measurement, 'method' | 'round'>> {
  return new Promise((resolve, reject) => {
    const args = [
      '--expose-gc',
      ...(process.env.BENCH_CHILD_FLAGS ?? '').split(' ').filter(Boolean),
      __filename,
      '--child',
      method,
      '--namespace',
      namespace,
      ...(values.parallelism === undefined ? [] : ['--parallelism', values.parallelism]),
    ];
    // BENCH_CHILD_CGROUP (a cgroup v1 memory directory): run the deletion inside it, as in a function
    // instance with that much memory (Node sizes its heap from the constrained memory).
    const cgroup = process.env.BENCH_CHILD_CGROUP;
    const [file, argv] = cgroup
      ? ['/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, process.execPath, ...args]]
      : [process.execPath, args];
    execFile(file, argv, { env: process.env, maxBuffer: 10 * MB, timeout: 30 * 60_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${method} child failed: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Omit<Measurement, 'method' | 'round'>);
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Per entity: the loop ran on SINGLE_N sessions, the engine on N. */
function oneAtATimeSummary(rows: Measurement[], enginePerSecond: number): Record<string, number> {
  if (rows.length === 0) return {};
  const ms = median(rows.map((r) => r.ms));
  const perSecond = SINGLE_N / (ms / 1000);
  return {
    oneAtATimeSessions: SINGLE_N,
    oneAtATimeMedianMs: ms,
    oneAtATimePerSecond: +perSecond.toFixed(1),
    speedupOverOneAtATime: +(enginePerSecond / perSecond).toFixed(1),
  };
}

async function main(): Promise<void> {
  process.env.METADATA_SERVER_DETECTION ??= 'none';
  if (values.child) return child(values.child === 'engine' ? 'engine' : values.child === 'single' ? 'single' : 'plain', values.namespace!);
  let emulator: Emulator | undefined;
  if (!process.env.DATASTORE_EMULATOR_HOST) {
    emulator = await startEmulator('datastore');
    process.env.DATASTORE_EMULATOR_HOST = emulator.host;
  }
  try {
    const ds = new Datastore({ projectId: process.env.GOOGLE_CLOUD_PROJECT ?? 'session-bench' });
    // Warm the emulator so the first measured run does not pay for its JIT.
    const warmNs = `warm-${randomBytes(4).toString('hex')}`;
    await seed(store(ds, warmNs), Math.min(2000, N));
    await runChild('engine', warmNs);

    const results: Measurement[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate the order so neither method always runs on a fresher emulator.
      const order = round % 2 ? (['engine', 'plain'] as const) : (['plain', 'engine'] as const);
      for (const method of order.filter((m) => values.methods.split(',').includes(m))) {
        const namespace = `bench-${method}-${round}-${randomBytes(4).toString('hex')}`;
        const t0 = performance.now();
        await seed(store(ds, namespace), N);
        const seedMs = performance.now() - t0;
        const m = await runChild(method, namespace);
        if (m.deleted !== N) throw new Error(`${method} deleted ${m.deleted} of ${N}`);
        results.push({
          method: method === 'engine' ? `engine (500 × ${PARALLELISM} in flight)` : 'plain loop (query 500, delete, repeat)',
          round,
          ...m,
        });
        process.stderr.write(`round ${round} ${method}: ${m.ms} ms (seeded in ${Math.round(seedMs)} ms)\n`);
      }
      if (SINGLE_N > 0) {
        const namespace = `bench-single-${round}-${randomBytes(4).toString('hex')}`;
        await seed(store(ds, namespace), SINGLE_N);
        const m = await runChild('single', namespace);
        if (m.deleted !== SINGLE_N) throw new Error(`one-at-a-time deleted ${m.deleted} of ${SINGLE_N}`);
        results.push({ method: `one at a time (${SINGLE_N} sessions)`, round, ...m });
        process.stderr.write(`round ${round} one at a time: ${m.ms} ms for ${SINGLE_N}\n`);
      }
    }
    console.table(results);
    const e = results.filter((r) => r.method.startsWith('engine'));
    const p = results.filter((r) => r.method.startsWith('plain'));
    const eMs = median(e.map((r) => r.ms));
    const pMs = p.length > 0 ? median(p.map((r) => r.ms)) : NaN;
    const summary = {
      sessions: N,
      rounds: ROUNDS,
      engineMedianMs: eMs,
      plainMedianMs: pMs,
      speedup: +(pMs / eMs).toFixed(2),
      enginePerSecond: Math.round(N / (eMs / 1000)),
      plainPerSecond: Math.round(N / (pMs / 1000)),
      engineMaxRssGrowthMB: Math.max(...e.map((r) => +(r.rssPeakMB - r.rssBeforeMB).toFixed(1))),
      plainMaxRssGrowthMB: p.length > 0 ? Math.max(...p.map((r) => +(r.rssPeakMB - r.rssBeforeMB).toFixed(1))) : NaN,
      engineMaxHeapGrowthMB: Math.max(...e.map((r) => +(r.heapPeakMB - r.heapBeforeMB).toFixed(1))),
      engineHeapRetainedMB: Math.max(...e.map((r) => r.heapRetainedMB)),
      engineQuarterRates: e[0]?.quarterRates ?? [],
      engineQuarterQueryMs: e[0]?.quarterQueryMs ?? [],
      engineQuarterDeleteMs: e[0]?.quarterDeleteMs ?? [],
      engineHeapLimitMB: e[0]?.heapLimitMB ?? NaN,
      ...oneAtATimeSummary(
        results.filter((r) => r.method.startsWith('one at a time')),
        N / (eMs / 1000),
      ),
    };
    console.table([summary]);
    console.log(JSON.stringify(summary));
  } finally {
    await emulator?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
