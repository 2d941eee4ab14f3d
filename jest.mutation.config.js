/**
 * The jest configuration `npm run test:mutation` runs each mutant against (see docs/testing.md).
 * Stryker runs the suite thousands of times, so it is the quick subset of it: transpile-only
 * TypeScript (types are checked once by the Stryker TypeScript checker, not per mutant) and no
 * emulator start per run.
 *   MUTATION_SUITE=core       no-emulator tests; covers every core module but datastoreStore.ts
 *   MUTATION_SUITE=datastore  the store tests on the emulators the mutation runner started once
 *                             (DATASTORE_EMULATOR_HOST, LEGACY_DATASTORE_EMULATOR_HOST set by it)
 */
const base = require('./jest.config.js');

const suites = {
  core: [
    '<rootDir>/test/lib/core/**/*.test.ts',
    // batchDelete/stores.test.ts runs on the Datastore emulator too: not here.
    '<rootDir>/test/lib/jobs/{batchDelete/engine,killMessage,killMessageProperties}.test.ts',
    '<rootDir>/test/lib/setup/config.test.ts',
    '<rootDir>/test/lib/store/{memoryStore,keyedLock}.test.ts',
    '<rootDir>/test/functions/http/{body,errors}.test.ts',
  ],
  datastore: ['<rootDir>/test/lib/store/{contract,datastoreStore}.test.ts'],
};

const suite = process.env.MUTATION_SUITE ?? 'core';
if (!suites[suite]) throw new Error(`MUTATION_SUITE must be one of ${Object.keys(suites).join(', ')}`);

module.exports = {
  ...base,
  testMatch: suites[suite],
  globalSetup: undefined,
  globalTeardown: undefined,
  // A mutant that makes a test wait forever (a promise that never settles) fails that test after
  // 3 s instead of making Stryker time the run out and restart its worker (about 10 s each). The
  // core tests take milliseconds; this is a hang guard, not a timing assertion. The datastore suite
  // keeps the suite's own timeouts: its retry and deadline tests wait on the emulators and a relay
  // for seconds (with 3 s its dry run failed, so no datastore mutant ran).
  ...(suite === 'core' ? { testTimeout: 3000 } : {}),
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json', isolatedModules: true }] },
};
