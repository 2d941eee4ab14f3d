/**
 * Benchmarks 2 and 3 (cleanup, kill) are standalone scripts (cleanup.ts, kill.ts) that print their
 * summary as the last JSON line; the harness runs them as child processes on its emulators (they
 * honour DATASTORE_EMULATOR_HOST / PUBSUB_EMULATOR_HOST and then start none of their own).
 */
import { join } from 'node:path';
import { BENCH_JS, lastJson, runNode } from './proc';

export interface CleanupSummary {
  sessions: number;
  rounds: number;
  engineMedianMs: number;
  plainMedianMs: number;
  speedup: number;
  enginePerSecond: number;
  plainPerSecond: number;
  engineMaxRssGrowthMB: number;
  plainMaxRssGrowthMB: number;
  engineMaxHeapGrowthMB: number;
  /** Heap after the run and a full GC, minus before: what the run left behind. */
  engineHeapRetainedMB?: number;
  /** Sessions/s in each quarter of the (first) engine run: steady when they are close. */
  engineQuarterRates?: number[];
  engineQuarterQueryMs?: number[];
  engineQuarterDeleteMs?: number[];
  /** V8's heap limit in the engine's process (from the machine's or the cgroup's memory). */
  engineHeapLimitMB?: number;
  /** The one-entity-at-a-time loop, run on fewer sessions; compared per entity. */
  oneAtATimeSessions?: number;
  oneAtATimeMedianMs?: number;
  oneAtATimePerSecond?: number;
  speedupOverOneAtATime?: number;
}

export interface KillSummary {
  sessions: number;
  rounds: number;
  publishToDoneMedianMs: number;
  functionEngineMedianMs: number;
  engineInProcessMedianMs: number;
  plainLoopMedianMs: number;
  endToEndOverEngine: number;
  plainOverEndToEnd: number;
}

export interface CleanupBenchResult {
  name: 'cleanup';
  summary: CleanupSummary;
  /** A large backlog (80,000 by default): the engine with default settings next to the plain loop, one round. */
  backlog?: CleanupSummary;
  /**
   * The same backlog, engine only, on the legacy Datastore emulator: whether the rate's rise across
   * the run (issue 27) follows the emulator or the engine.
   */
  backlogLegacy?: CleanupSummary;
}

export interface KillBenchResult {
  name: 'kill';
  /** Few sessions: the latency of publish → done. */
  latency: KillSummary;
  /** Many sessions: the throughput of a kill. */
  throughput: KillSummary;
}

async function script<T>(
  file: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<T> {
  log(`  node ${file} ${args.join(' ')}`);
  const { stdout, stderr, code } = await runNode([join(BENCH_JS, file), ...args], env, timeoutMs);
  if (code !== 0) throw new Error(`${file} ${args.join(' ')} exited with ${code}:\n${stderr.slice(-4000)}`);
  for (const line of stderr.trim().split('\n')) if (line) log(`    ${line}`);
  return lastJson<T>(stdout);
}

export async function runCleanupBench(
  options: {
    sessions: number;
    rounds: number;
    oneAtATime: number;
    backlog: number;
    env: Record<string, string>;
    /** The environment of a run on the legacy emulator (its DATASTORE_EMULATOR_HOST); the backlog runs there too. */
    legacyEnv?: Record<string, string>;
  },
  log: (line: string) => void,
): Promise<CleanupBenchResult> {
  const summary = await script<CleanupSummary>(
    'cleanup.js',
    ['--sessions', String(options.sessions), '--rounds', String(options.rounds), '--one-at-a-time', String(options.oneAtATime)],
    options.env,
    60 * 60_000,
    log,
  );
  if (options.backlog <= 0) return { name: 'cleanup', summary };
  const backlog = await script<CleanupSummary>(
    'cleanup.js',
    ['--sessions', String(options.backlog), '--rounds', '1', '--one-at-a-time', '0'],
    options.env,
    90 * 60_000,
    log,
  );
  if (!options.legacyEnv) return { name: 'cleanup', summary, backlog };
  const backlogLegacy = await script<CleanupSummary>(
    'cleanup.js',
    ['--sessions', String(options.backlog), '--rounds', '1', '--one-at-a-time', '0', '--methods', 'engine'],
    options.legacyEnv,
    90 * 60_000,
    log,
  );
  return { name: 'cleanup', summary, backlog, backlogLegacy };
}

export async function runKillBench(
  options: { latencySessions: number; latencyRounds: number; sessions: number; rounds: number; env: Record<string, string> },
  log: (line: string) => void,
): Promise<KillBenchResult> {
  const latency = await script<KillSummary>(
    'kill.js',
    ['--sessions', String(options.latencySessions), '--rounds', String(options.latencyRounds)],
    options.env,
    20 * 60_000,
    log,
  );
  // The smoke asks for the same size twice: one run serves both.
  const throughput =
    options.sessions === options.latencySessions && options.rounds === options.latencyRounds
      ? latency
      : await script<KillSummary>(
          'kill.js',
          ['--sessions', String(options.sessions), '--rounds', String(options.rounds)],
          options.env,
          60 * 60_000,
          log,
        );
  return { name: 'kill', latency, throughput };
}
