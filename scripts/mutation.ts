import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startEmulator, type Emulator } from './emulators';

/**
 * `npm run test:mutation [-- --suite core|datastore] [-- <stryker options, e.g. --mutate lib/core/ids.ts>]`
 *
 * Runs StrykerJS once per suite of jest.mutation.config.js (the datastore suite on emulators
 * started here once, not per mutant), then checks every module's score against its threshold:
 * Stryker's own `break` only sees a run's total, and a weak module must not hide behind strong ones.
 * Reports: reports/mutation/<suite>.html and .json (not committed). See docs/testing.md.
 */

type Suite = 'core' | 'datastore';

/** Lowest mutation score each module may have; datastoreStore.ts's lower bar is the issue's. */
const THRESHOLD: Record<Suite, number> = { core: 90, datastore: 80 };

interface Report {
  files: Record<string, { mutants: Array<{ status: string }> }>;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit', env });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/** Stryker's definition: detected (killed or timed out) over valid mutants; compile errors and ignored ones do not count. */
export function scores(report: Report): Array<{ file: string; score: number; detected: number; valid: number }> {
  return Object.entries(report.files).map(([file, { mutants }]) => {
    const count = (s: string) => mutants.filter((m) => m.status === s).length;
    const detected = count('Killed') + count('Timeout');
    const valid = detected + count('Survived') + count('NoCoverage');
    return { file, score: valid === 0 ? 100 : (100 * detected) / valid, detected, valid };
  });
}

/** Every module at or above the threshold, or the run fails: one line per module. */
export function judge(report: Report, threshold: number): { ok: boolean; lines: string[] } {
  const results = scores(report);
  const lines = results.map((s) => {
    const pass = s.score >= threshold;
    return `${pass ? 'ok  ' : 'FAIL'} ${s.file.padEnd(28)} ${s.score.toFixed(2).padStart(6)} % (${s.detected}/${s.valid}, threshold ${threshold} %)`;
  });
  return { ok: results.every((s) => s.score >= threshold), lines };
}

async function runSuite(suite: Suite, strykerArgs: string[]): Promise<boolean> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MUTATION_SUITE: suite,
    GOOGLE_CLOUD_PROJECT: 'session-test',
    METADATA_SERVER_DETECTION: 'none',
  };
  const emulators: Emulator[] = [];
  // Interrupted (Ctrl-C): the emulators run in their own process groups and would outlive us.
  const interrupted = (signal: NodeJS.Signals) => {
    void Promise.all(emulators.map((e) => e.stop())).finally(() => process.kill(process.pid, signal));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    if (suite === 'datastore') {
      emulators.push(...(await Promise.all([startEmulator('datastore'), startEmulator('datastore-legacy')])));
      env.DATASTORE_EMULATOR_HOST = emulators[0]!.host;
      env.LEGACY_DATASTORE_EMULATOR_HOST = emulators[1]!.host;
    }
    const started = Date.now();
    const code = await run(join(process.cwd(), 'node_modules', '.bin', 'stryker'), ['run', 'stryker.config.mjs', ...strykerArgs], env);
    console.log(`suite ${suite}: ${((Date.now() - started) / 60_000).toFixed(1)} min`);
    const report = JSON.parse(readFileSync(`reports/mutation/${suite}.json`, 'utf8')) as Report;
    const verdict = judge(report, THRESHOLD[suite]);
    for (const line of verdict.lines) console.log(line);
    return code === 0 && verdict.ok;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await Promise.all(emulators.map((e) => e.stop()));
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--suite');
  const suites: Suite[] = at >= 0 ? [args.splice(at, 2)[1] as Suite] : ['core', 'datastore'];
  if (!suites.every((s) => s in THRESHOLD)) throw new Error('--suite must be core or datastore');
  let ok = true;
  for (const suite of suites) ok = (await runSuite(suite, args)) && ok;
  process.exitCode = ok ? 0 : 1;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
