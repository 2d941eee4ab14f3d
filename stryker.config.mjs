// Mutation testing of the core: `npm run test:mutation` (scripts/mutation.ts) runs this twice,
// once per MUTATION_SUITE (see jest.mutation.config.js), and checks the per-module thresholds.
const suite = process.env.MUTATION_SUITE ?? 'core';

const mutate = {
  core: [
    'lib/core/cookies.ts',
    'lib/core/errors.ts',
    'lib/core/ids.ts',
    'lib/core/json.ts',
    'lib/core/limits.ts',
    'lib/core/manager.ts',
    'lib/core/operations.ts',
    'lib/core/session.ts',
    'lib/core/user.ts',
    'lib/jobs/batchDelete.ts',
    'lib/jobs/killMessage.ts',
    'lib/setup/config.ts',
    'lib/setup/settings.ts',
    'lib/store/keyedLock.ts',
    'lib/store/memoryStore.ts',
    'functions/http/body.ts',
    'functions/http/errors.ts',
  ],

  datastore: ['lib/store/datastoreStore.ts'],
}[suite];

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'jest',
  // enableFindRelatedTests: each mutant loads only the test files that import its module (directly or
  // not); loading all of them cost more than running the tests (about 0.1 s per file and mutant).
  jest: { projectType: 'custom', configFile: 'jest.mutation.config.js', enableFindRelatedTests: true },
  // No TypeScript checker: type-checking each mutant cost more CPU than testing it (killMessage.ts,
  // 151 mutants: 8.5 CPU-minutes in the checker, 3.5 in the tests), the run could not stay within
  // 20 minutes with it. Mutants that would not compile are run transpile-only like the others, and
  // count (see docs/testing.md, "Measured").
  checkers: [],
  coverageAnalysis: 'perTest',
  mutate,
  concurrency: 2,
  // The per-module thresholds (90 %, 80 % for datastoreStore.ts) are checked by scripts/mutation.ts
  // on the JSON report; `break` makes Stryker itself fail a run whose total falls below them.
  thresholds: { high: 95, low: suite === 'datastore' ? 80 : 90, break: suite === 'datastore' ? 80 : 90 },
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${suite}.html` },
  jsonReporter: { fileName: `reports/mutation/${suite}.json` },
  incrementalFile: `reports/stryker-incremental-${suite}.json`,
  tempDirName: `.stryker-tmp`,
  cleanTempDir: 'always',
  timeoutMS: 5000,
};
