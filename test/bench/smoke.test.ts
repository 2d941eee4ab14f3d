import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, ROOT } from '../support/functionsFramework';

/**
 * The benchmark harness (`npm run bench`, bench/) at tiny sizes on the test run's emulators: it must
 * compile (strict), start and stop its servers, run every benchmark and write a well-formed report.
 * No timing is asserted: these numbers mean nothing at this size.
 */
describe('benchmark harness (smoke)', () => {
  let dir: string;
  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs every benchmark at tiny sizes and writes a well-formed report', () => {
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'bench/tsconfig.json'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);

    const out = join(dir, 'report.json');
    const run = spawnSync(
      process.execPath,
      [
        join(ROOT, 'dist-bench', 'bench', 'run.js'),
        '--smoke',
        `--datastore-host=${process.env.DATASTORE_EMULATOR_HOST}`,
        `--pubsub-host=${process.env.PUBSUB_EMULATOR_HOST}`,
        `--legacy-datastore-host=${process.env.LEGACY_DATASTORE_EMULATOR_HOST}`,
        `--out=${out}`,
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 240_000, killSignal: 'SIGKILL' },
    );
    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      smoke: boolean;
      machine: { nproc: number; node: string };
      errors: unknown[];
      load: Record<string, { start: number[]; end: number[] }>;
      results: {
        latency?: {
          latency: { rttMs: number; emulator: string };
          mixes: Array<{
            ours: Record<string, number>;
            express: Record<string, number>;
            oursCache?: Record<string, number>;
          }>;
        };
        request?: {
          mixes: Array<{
            ours: Record<string, number>;
            express: Record<string, number>;
            oursCache?: Record<string, number>;
            ratios: Record<string, number>;
            runs: Array<{ errors: number }>;
          }>;
        };
        cleanup?: { summary: Record<string, number>; backlog?: Record<string, number | number[]> };
        kill?: { latency: Record<string, number>; throughput: Record<string, number> };
        coldStart?: {
          ratio: number;
          ratioToRequireOnly: number;
          variants: Array<{ name: string; requireMs: number; loadsPubsub: boolean; loadsDatastore: boolean }>;
          spawn: {
            stacks: Array<{ name: string; wallMs: number; cpuMs: number; rssAfterMB: number; codeCache: string[] }>;
            builds: Array<{ stack: string; main?: string }>;
            ratios: Record<string, number>;
          };
        };
      };
    };
    expect({ status: run.status, errors: report.errors }).toEqual({ status: 0, errors: [] });
    expect(report.smoke).toBe(true);
    expect(report.machine.nproc).toBeGreaterThan(0);

    const mix = report.results.request!.mixes[0];
    for (const stack of [mix.ours, mix.express]) {
      expect(stack.throughput).toBeGreaterThan(0);
      expect(stack.p99).toBeGreaterThanOrEqual(stack.p50);
      expect(stack.rpcPerRead).toBeGreaterThan(0);
      expect(stack.rpcPerWrite).toBeGreaterThan(0);
    }
    expect(mix.runs.every((r) => r.errors === 0)).toBe(true);
    // Round trips at the floor: one lookup per read; a write is lookup + commit (+ beginTransaction on the emulator).
    expect(mix.ours.rpcPerRead).toBe(1);
    expect(mix.ours.rpcPerWrite).toBe(3);
    expect(Number.isFinite(mix.ratios.throughput)).toBe(true);
    // The read-cache stack (SESSION_READ_CACHE_MS): a write still reads in its transaction; a read costs at most one lookup.
    expect(mix.oursCache!.throughput).toBeGreaterThan(0);
    expect(mix.oursCache!.rpcPerRead).toBeLessThanOrEqual(1);
    expect(mix.oursCache!.rpcPerWrite).toBe(3);

    // The production-latency mode: through relays on the legacy emulator, RPCs counted at the wire are
    // production's (a change = the lookup that opens the transaction + the commit); reads and writes apart.
    const latency = report.results.latency!;
    expect(latency.latency).toMatchObject({ rttMs: 2, emulator: 'legacy' });
    const lm = latency.mixes[0];
    expect({ read: lm.ours.wirePerRead, write: lm.ours.wirePerWrite }).toEqual({ read: 1, write: 2 });
    expect({ read: lm.express.wirePerRead, write: lm.express.wirePerWrite }).toEqual({ read: 1, write: 2 });
    expect(lm.oursCache!.wirePerWrite).toBe(2);
    for (const stack of [lm.ours, lm.express, lm.oursCache!]) {
      expect(stack.readP99).toBeGreaterThanOrEqual(stack.readP50);
      expect(stack.writeP99).toBeGreaterThanOrEqual(stack.writeP50);
    }
    // The machine's load average is recorded next to every benchmark's figures.
    expect(Object.keys(report.load)).toEqual(['request', 'latency', 'cleanup', 'kill', 'coldStart']);
    expect(report.load.request.start).toHaveLength(3);

    const cleanup = report.results.cleanup!.summary;
    expect(cleanup.sessions).toBe(50);
    expect(cleanup.enginePerSecond).toBeGreaterThan(0);
    expect(cleanup.plainPerSecond).toBeGreaterThan(0);
    expect(cleanup.oneAtATimePerSecond).toBeGreaterThan(0);
    expect(Number.isFinite(cleanup.engineMaxRssGrowthMB)).toBe(true);
    const backlog = report.results.cleanup!.backlog!;
    expect(backlog.sessions).toBe(30);
    expect(backlog.engineQuarterRates).toHaveLength(4);

    const kill = report.results.kill!;
    expect(kill.latency.sessions).toBe(10);
    expect(kill.latency.publishToDoneMedianMs).toBeGreaterThan(0);
    expect(kill.throughput.publishToDoneMedianMs).toBeGreaterThan(0);

    const cold = report.results.coldStart!;
    expect(cold.variants.map((v) => v.name)).toEqual(['datastore', 'datastore+client', 'framework', 'index', 'index+store']);
    expect(cold.variants.find((v) => v.name === 'index')!.loadsPubsub).toBe(false);
    expect(cold.variants.find((v) => v.name === 'index+store')!.loadsDatastore).toBe(true);
    expect(cold.ratio).toBeGreaterThan(0);
    expect(cold.ratioToRequireOnly).toBeGreaterThan(0);
    // spawn → first 200: ours from its deployed tree (the bundle's loader as main, its code cache accepted) and both baselines.
    expect(cold.spawn.stacks.map((x) => x.name)).toEqual(['ours', 'ff-express', 'express']);
    for (const x of cold.spawn.stacks) {
      expect(x.wallMs).toBeGreaterThan(0);
      expect(x.cpuMs).toBeGreaterThan(0);
      expect(x.rssAfterMB).toBeGreaterThan(0);
    }
    expect(cold.spawn.builds.find((b) => b.stack === 'ours')!.main).toBe('dist/deploy/index.cjs');
    expect(cold.spawn.stacks[0].codeCache).toEqual(['accepted']);
    expect(cold.spawn.ratios.oursVsFfExpress).toBeGreaterThan(0);
  }, 250_000);
});
