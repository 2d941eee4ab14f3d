/**
 * Import rules for lib/, functions/, bin/ and scripts/ (`npm run check:cycles`): no import cycles,
 * lib/ stays a library (nothing of functions/, bin/ or scripts/), and the Cloud Functions entry
 * points are imported by functions/index.ts only, which registers them. Type-only imports and
 * lazy require() calls count too.
 */
const ENTRY_POINTS = '^functions/(index|sessionApi|killSessionByUser|startClearSessions)[.]ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: the modules load in an order that depends on who is required first.',
      from: { path: '^(lib|functions|bin|scripts)/' },
      to: { circular: true },
    },
    {
      name: 'lib-stays-a-library',
      severity: 'error',
      comment: 'lib/ is the published library: it must not import the functions, the CLI or the scripts.',
      from: { path: '^lib/' },
      to: { path: '^(functions|bin|scripts)/' },
    },
    {
      name: 'entry-points-only-from-index',
      severity: 'error',
      comment:
        'An entry point (functions/index.ts, sessionApi.ts, killSessionByUser.ts, startClearSessions.ts) is ' +
        'imported by no other module under functions/; functions/index.ts registers the other three.',
      from: { path: '^functions/', pathNot: '^functions/index[.]ts$' },
      to: { path: ENTRY_POINTS },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve: the rules above would not see where it leads.',
      from: { path: '^(lib|functions|bin|scripts)/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|dist-bench|coverage|reports|[.]stryker-tmp|node_modules)/' },
    // See `import type` and `typeof import()` as dependencies too (they are erased at compile time,
    // but still tie the modules together).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      extensions: ['.ts', '.js', '.json'],
      exportsFields: ['exports'],
      conditionNames: ['require', 'node', 'types', 'default'],
    },
  },
};
