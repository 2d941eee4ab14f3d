// @ts-check
// ESLint (flat config) with typescript-eslint's type-checked recommended set. Formatting is Prettier's
// job (.prettierrc.json): no stylistic rules here. `npm run lint` fails on any warning too.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const unusedVars = {
  args: 'after-used',
  argsIgnorePattern: '^_',
  varsIgnorePattern: '^_',
  caughtErrorsIgnorePattern: '^_',
  destructuredArrayIgnorePattern: '^_',
  ignoreRestSiblings: true,
};

export default defineConfig(
  globalIgnores([
    'dist/',
    'dist-bench/',
    'node_modules/',
    'reports/',
    '.stryker-tmp/',
    'terraform/schema/',
    'coverage/',
    'build/',
    '.local/',
  ]),
  {
    // An eslint-disable comment that no longer suppresses anything is an error, so the ones kept
    // on purpose (lazy require() of heavy clients) stay meaningful.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  js.configs.recommended,
  {
    name: 'typescript (type-checked)',
    files: ['**/*.ts', '**/*.mts', '**/*.cts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // The first project that includes a file types it: the sources get tsconfig.json's stricter
        // options (noUncheckedIndexedAccess); tests and examples tsconfig.test.json; bench/ and
        // client/ (browser ESM) their own.
        project: ['./tsconfig.json', './tsconfig.test.json', './bench/tsconfig.json', './client/tsconfig.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-require-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', unusedVars],
      // Methods that implement a promise-returning contract (SessionStore, KillPublisher) are async
      // without awaiting anything when the work is synchronous (the memory store): that is the point.
      '@typescript-eslint/require-await': 'off',
      // The code writes `import type { A }` for type-only imports and `import { type A, b }` for
      // mixed ones; the fix follows that. `typeof import('x')` stays allowed: the lazy require()s
      // of heavy clients are typed that way.
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'inline-type-imports', disallowTypeAnnotations: false },
      ],
    },
  },
  {
    name: 'tests: what does not fit tests',
    files: ['test/**/*.ts'],
    rules: {
      // supertest's `res.body`, JSON.parse and expect.any() are typed `any`; asserting on them is the point.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Methods are taken off objects to stub and restore them.
      '@typescript-eslint/unbound-method': 'off',
      // Fault injection throws and rejects with non-Error values on purpose (gRPC-style errors, junk).
      '@typescript-eslint/only-throw-error': 'off',
      '@typescript-eslint/prefer-promise-reject-errors': 'off',
    },
  },
  {
    name: 'benchmarks: probes patch prototypes of Node and the Google clients',
    files: ['bench/**/*.ts'],
    rules: { '@typescript-eslint/unbound-method': 'off' },
  },
  {
    name: 'plain javascript (CommonJS build/deploy scripts and configs)',
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: { 'no-unused-vars': ['error', unusedVars] },
  },
  {
    name: 'javascript modules',
    files: ['**/*.mjs'],
    languageOptions: { sourceType: 'module', globals: { ...globals.node } },
    rules: { 'no-unused-vars': ['error', unusedVars] },
  },
);
