/**
 * What functions-framework loads in the deployed tree (its package.json `main`; package-deploy.js
 * points it here). deploy/bundle.js copies it to dist/deploy/index.js next to the bundle
 * (functions.js) and the V8 code cache made for it at build time (functions.cache).
 *
 * Why not a plain require of the bundle: Node 20 has no compile cache for CommonJS, and even Node 22's
 * `module.enableCompileCache()` fills its cache on the first start of each instance, which is the
 * start that matters. A vm.Script given cachedData skips parsing and compiling what the build-time
 * start compiled, on both versions.
 *
 * The cache is only a hint: V8 checks its version, flags and the source against it and rejects a
 * mismatch (a runtime image with another Node, a corrupt or truncated file), and then compiles the
 * source as if there were no cache. So a rejected or missing cache costs time, never correctness;
 * nothing is logged for it, since the platform's log is the user's. What happened is readable at
 * process[Symbol.for('viur-session.codeCache')] ('accepted', 'rejected' or 'absent') for the
 * benchmark and the tests.
 *
 * With VIUR_SESSION_WRITE_CODE_CACHE set (only deploy/bundle.js does), the cache is written there
 * when the process exits: after the build-time start has served a request, so it holds the
 * functions the first request compiles too, not only those that run at load.
 *
 * Plain CommonJS with built-ins only: it runs before anything else of ours.
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

const BUNDLE = path.join(__dirname, 'functions.js');
const CACHE = path.join(__dirname, 'functions.cache');
const STATE = Symbol.for('viur-session.codeCache');

function readCache() {
  try {
    return fs.readFileSync(CACHE);
  } catch {
    return undefined;
  }
}

const writeTo = process.env.VIUR_SESSION_WRITE_CODE_CACHE;
// The build-time start compiles from source: a cache left from an earlier build would describe other code.
const cachedData = writeTo ? undefined : readCache();
const script = new vm.Script(Module.wrap(fs.readFileSync(BUNDLE, 'utf8')), { filename: BUNDLE, cachedData });
process[STATE] = cachedData === undefined ? 'absent' : script.cachedDataRejected ? 'rejected' : 'accepted';

if (writeTo) {
  process.once('exit', () => fs.writeFileSync(writeTo, script.createCachedData()));
}

// The bundle runs as the module it would be if required: its own module object, and a require
// that resolves from its file (the externals: functions-framework, express, Pub/Sub).
const bundle = new Module(BUNDLE, module);
bundle.filename = BUNDLE;
bundle.paths = module.paths;
script.runInThisContext()(bundle.exports, Module.createRequire(BUNDLE), bundle, BUNDLE, __dirname);
bundle.loaded = true;
module.exports = bundle.exports;
