/**
 * Benchmark 4, cold start: a fresh Node process loading a module, timed inside the process (the
 * require alone) and from process start (performance.now(), whose origin is the process start).
 * Variants run interleaved, several times each; medians are reported. The module list of each
 * variant also shows whether @google-cloud/pubsub (or the Datastore client) was loaded.
 */
import { join } from 'node:path';
import { lastJson, ROOT, runNode } from './proc';
import { median, ratio, round } from './stats';

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

export interface ColdStartResult {
  name: 'coldStart';
  runs: number;
  variants: ColdVariant[];
  /**
   * sessionApi ready for its first lookup (index.js + the runtime with its Datastore client) ÷ a
   * Datastore client alone (require + new Datastore()): both end with a usable client.
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

const VARIANTS: Array<{ name: string; what: string; code: string }> = [
  { name: 'datastore', what: "require('@google-cloud/datastore')", code: "require('@google-cloud/datastore')" },
  { name: 'datastore+client', what: "require('@google-cloud/datastore') + new Datastore()", code: "new (require('@google-cloud/datastore').Datastore)({ projectId: process.env.GOOGLE_CLOUD_PROJECT })" },
  {
    name: 'framework',
    what: "functions-framework's server module (express, body parsers): what its main.js loads for any function",
    code: "require('./node_modules/@google-cloud/functions-framework/build/src/server.js')",
  },
  { name: 'index', what: "require('./dist/functions/index.js') (registers all three functions)", code: "require('./dist/functions/index.js')" },
  {
    name: 'index+store',
    what: 'the same + the runtime the first request builds (Datastore client loaded and constructed)',
    code: "require('./dist/functions/index.js'); require('./dist/shared/runtime').runtime()",
  },
];

function script(code: string): string {
  return [
    'const t0 = process.hrtime.bigint();',
    code + ';',
    'const requireMs = Number(process.hrtime.bigint() - t0) / 1e6;',
    'const sinceStartMs = performance.now();',
    'const keys = Object.keys(require.cache);',
    "const has = (s) => keys.filter((k) => k.includes(s)).length;",
    "console.log(JSON.stringify({ requireMs, sinceStartMs, modules: keys.length, pubsubModules: has('/@google-cloud/pubsub/'), datastoreModules: has('/@google-cloud/datastore/') }));",
  ].join('\n');
}

export async function runColdStartBench(options: { runs: number; project: string; datastoreHost: string }): Promise<ColdStartResult> {
  const samples = new Map<string, Sample[]>(VARIANTS.map((v) => [v.name, []]));
  const env = { GOOGLE_CLOUD_PROJECT: options.project, DATASTORE_EMULATOR_HOST: options.datastoreHost, SESSION_NAMESPACE: 'bench-cold' };
  for (let i = 0; i < options.runs; i++) {
    for (const v of i % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
      const { stdout, stderr, code } = await runNode(['-e', script(v.code)], env, 60_000);
      if (code !== 0) throw new Error(`cold start ${v.name} failed (${code}):\n${stderr}`);
      samples.get(v.name)!.push(lastJson<Sample>(stdout));
    }
  }
  const variants: ColdVariant[] = VARIANTS.map((v) => {
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
  const get = (n: string) => variants.find((v) => v.name === n)!;
  return {
    name: 'coldStart',
    runs: options.runs,
    variants,
    ratio: ratio(get('index+store').requireMs, get('datastore+client').requireMs),
    ratioToRequireOnly: ratio(get('index+store').requireMs, get('datastore').requireMs),
    ratioBeyondFramework: ratio(get('index+store').requireMs - get('framework').requireMs, get('datastore+client').requireMs),
    moduleOnlyRatio: ratio(get('index').requireMs, get('datastore').requireMs),
    notes: [
      `cwd ${join(ROOT)}; times are medians of ${options.runs} fresh processes per variant, interleaved.`,
      'index.js loads express at module load (functions/http/body.ts hooks the express app functions-framework builds); in a real start functions-framework has loaded it already, so "framework" (its server module) is what every function pays anyway.',
      'index.js defers the Datastore client to the first request, so "index" alone flatters; the goal is judged on "index+store" (what stands before the first lookup: functions-framework, our modules, the Datastore client loaded and constructed) against a Datastore client alone (require + new Datastore()).',
    ],
  };
}
