/**
 * What functions-framework loads in the deployed tree (its package.json `main`; package-deploy.js
 * points it here). deploy/bundle.js copies it to dist/deploy/index.cjs next to the bundle
 * (functions.js) and the V8 code cache made for it at build time (functions.cache).
 *
 * Why not a plain require of the bundle: Node 20 has no compile cache for CommonJS, and even Node 22's
 * `module.enableCompileCache()` fills its cache on the first start of each instance, which is the
 * start that matters. A vm.Script given cachedData skips parsing and compiling what the build-time
 * start compiled, on both versions.
 *
 * The cache is only a hint. V8 checks its version, flags and the source's length against it and
 * rejects a mismatch (a runtime image with another Node, a truncated file), and then compiles the
 * source as if there were no cache. It does not check the payload: a release build of V8 given a
 * cache with flipped bytes aborts the process (Fatal error, unreachable code). So the file carries a
 * SHA-256 of its payload in a one-line header, checked here first (about 2 ms); a mismatch is
 * treated as a rejection. A rejected or missing cache costs time, never correctness; nothing is
 * logged for it, since the platform's log is the user's. What happened is readable at
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

const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

const BUNDLE = path.join(__dirname, 'functions.js');
const CACHE = path.join(__dirname, 'functions.cache');
const STATE = Symbol.for('viur-session.codeCache');

const MAGIC = 'viur-session-code-cache-v1';
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** The V8 payload of the cache file, `null` when the file fails its checksum, undefined when there is none. */
function readCache() {
  let file;
  try {
    file = fs.readFileSync(CACHE);
  } catch {
    return undefined;
  }
  const eol = file.indexOf(0x0a);
  const [magic, digest] = eol > 0 && eol < 200 ? file.subarray(0, eol).toString('latin1').split(' ') : [];
  const payload = file.subarray(eol + 1);
  return magic === MAGIC && digest === sha256(payload) ? payload : null;
}

// A dynamic import() inside the bundle (gaxios has one, on a path Node 20+ never takes) resolves as
// it would in a module file, instead of failing for want of a callback.
const importModuleDynamically = vm.constants && vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER;

/**
 * The bundle's module function. In a function so that the cache's bytes and the vm.Script are
 * garbage once it has run (only the build-time start keeps the script, to serialise it at exit).
 */
function compile(writeTo) {
  // The build-time start compiles from source: a cache left from an earlier build would describe other code.
  const cached = writeTo ? undefined : readCache();
  const script = new vm.Script(Module.wrap(fs.readFileSync(BUNDLE, 'utf8')), {
    filename: BUNDLE,
    cachedData: cached || undefined,
    ...(importModuleDynamically ? { importModuleDynamically } : {}),
  });
  process[STATE] = cached === undefined ? 'absent' : cached === null || script.cachedDataRejected ? 'rejected' : 'accepted';
  if (writeTo) {
    process.once('exit', () => {
      const payload = script.createCachedData();
      fs.writeFileSync(writeTo, Buffer.concat([Buffer.from(`${MAGIC} ${sha256(payload)}\n`, 'latin1'), payload]));
    });
  }
  return script.runInThisContext();
}

// The bundle runs as the module it would be if required: its own module object, and a require
// that resolves from its file (the externals: functions-framework, express, Pub/Sub).
const bundle = new Module(BUNDLE, module);
bundle.filename = BUNDLE;
bundle.paths = module.paths;
compile(process.env.VIUR_SESSION_WRITE_CODE_CACHE)(bundle.exports, Module.createRequire(BUNDLE), bundle, BUNDLE, __dirname);
bundle.loaded = true;
module.exports = bundle.exports;
