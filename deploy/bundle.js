#!/usr/bin/env node
/**
 * The second half of `gcp-build` (after `npm run build`): what Cloud Build runs so that the deployed
 * functions start fast (issue 15). Most of a cold start was Node resolving, reading and compiling
 * ~300 modules of the Datastore client stack (google-gax, grpc-js, protobufjs, google-auth-library).
 *
 * 1. esbuild bundles dist/functions/index.js, with everything it loads, into dist/deploy/functions.js.
 *    Left outside (required at run time from node_modules, as before):
 *    - @google-cloud/functions-framework: the framework that runs us; the functions must register in
 *      its own registry, and its signal handling, logging and execution ids stay its own;
 *    - express: functions/http/body.ts hooks the very express instance the framework builds;
 *    - @google-cloud/pubsub: loaded only when a kill message is published, never at start.
 * 2. deploy/loader.js becomes dist/deploy/index.cjs, the `main` of the deployed package.json. The
 *    extension is the point: functions-framework's loader takes a .cjs file for CommonJS as it is,
 *    where for a .js file it first imports read-package-up (an ES module graph of ~25 modules:
 *    normalize-package-data, spdx-*, hosted-git-info, semver…) to look for "type": "module".
 * 3. A V8 code cache (dist/deploy/functions.cache): the real functions-framework is started on the
 *    bundle with `--target=sessionApi`, answers one `GET /session` whose lookup goes to a closed port
 *    (nothing leaves the machine), and writes the cache on exit. It is made by the Node that runs
 *    the build, which on Cloud Functions is the runtime's. A failure there only warns: the
 *    functions start without a cache, as loader.js does whenever V8 rejects one.
 *
 * Relative to its working directory (the package root), like every npm script.
 * Usage: node deploy/bundle.js   (npm run gcp-build runs it after npm run build)
 */
'use strict';

const { spawn } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');

const root = process.cwd();
const outDir = path.join(root, 'dist', 'deploy');
const ENTRY = path.join(root, 'dist', 'functions', 'index.js');
const EXTERNAL = ['@google-cloud/functions-framework', 'express', '@google-cloud/pubsub'];

function fail(message) {
  process.stderr.write(`deploy/bundle: ${message}\n`);
  process.exit(1);
}

/**
 * Packages find their data files (a .proto, a JSON config) through __dirname; in one bundle that
 * would be dist/deploy. Each module that uses it gets its own original directory back, relative to
 * the bundle, so it keeps working wherever the tree is (node_modules stays beside dist/).
 */
const ownDirname = {
  name: 'own-dirname',
  setup(build) {
    build.onLoad({ filter: /\.[cm]?js$/ }, async (args) => {
      const text = await fs.promises.readFile(args.path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(text)) return undefined;
      const dir = JSON.stringify(path.relative(outDir, path.dirname(args.path)));
      const file = JSON.stringify(path.relative(outDir, args.path));
      const prefix = `var __dirname = require("path").join(__bundle_dirname, ${dir}), __filename = require("path").join(__bundle_dirname, ${file});\n`;
      return { contents: prefix + text, loader: 'js', resolveDir: path.dirname(args.path) };
    });
  },
};

async function bundle() {
  let esbuild;
  try {
    esbuild = require('esbuild');
  } catch (err) {
    fail(`esbuild is not installed (${err.message}); it is a devDependency, which npm ci installs`);
  }
  if (!fs.existsSync(ENTRY)) fail(`${path.relative(root, ENTRY)} is missing: run npm run build first`);
  fs.rmSync(outDir, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: [ENTRY],
    outfile: path.join(outDir, 'functions.js'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    // The oldest runtime the package supports (engines); the deployed one is nodejs22.
    target: 'node20',
    external: EXTERNAL,
    plugins: [ownDirname],
    banner: { js: 'var __bundle_dirname = __dirname;' },
    // Whitespace goes: with it the process held ~40 MB more after 1,000 requests (165 vs 126 MB,
    // cache accepted, 3 samples each), above the unbundled build's 135. Names stay, since error and
    // class names appear in logs. A stack trace's line:column in the bundle maps back to the
    // sources with functions.js.map (written beside it, never loaded).
    minifySyntax: true,
    minifyWhitespace: true,
    sourcemap: 'external',
    sourcesContent: false,
    legalComments: 'eof',
    logLevel: 'error',
    metafile: true,
  });
  fs.copyFileSync(path.join(__dirname, 'loader.js'), path.join(outDir, 'index.cjs'));
  return Object.keys(result.metafile.inputs).length;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function get(port, pathName, headers) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathName, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.once('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
  });
}

async function listening(port, child, deadline) {
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

async function writeCodeCache() {
  const target = path.join(outDir, 'functions.cache');
  const partial = `${target}.partial`;
  // The command the runtime runs (`functions-framework`, the package's bin), not a copy of it.
  const pkgDir = path.join(root, 'node_modules', '@google-cloud', 'functions-framework');
  const { bin } = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  const framework = path.join(pkgDir, typeof bin === 'string' ? bin : bin['functions-framework']);
  const [port, closed] = [await freePort(), await freePort()];
  const project = 'code-cache';
  const env = {
    ...process.env,
    PORT: String(port),
    NODE_ENV: 'production',
    GOOGLE_CLOUD_PROJECT: project,
    // A port nothing listens on: the lookup runs the whole client path and fails at once.
    DATASTORE_EMULATOR_HOST: `127.0.0.1:${closed}`,
    METADATA_SERVER_DETECTION: 'none',
    SESSION_STORE_TIMEOUT_MS: '500',
    VIUR_SESSION_WRITE_CODE_CACHE: partial,
  };
  // V8 rejects a cache made under other V8 flags (--max-old-space-size among them); the runtime
  // starts node without any, so the cache is made without the build's.
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('SESSION_') && k !== 'SESSION_STORE_TIMEOUT_MS') delete env[k];
  const child = spawn(process.execPath, [framework, '--target=sessionApi', `--source=${path.join(outDir, 'index.cjs')}`], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (b) => (output = (output + b).slice(-20_000)));
  child.stderr.on('data', (b) => (output = (output + b).slice(-20_000)));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    if (!(await listening(port, child, Date.now() + 60_000))) throw new Error(`functions-framework did not start:\n${output}`);
    const token = randomBytes(32).toString('base64url');
    const status = await get(port, '/session', { cookie: `__Host-viur_cookie_${project}=${token}` });
    // The store is down by design: 503 is the expected answer, after the whole client path ran.
    if (status !== 503) throw new Error(`GET /session answered ${status}, expected 503 (store down):\n${output}`);
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (!fs.existsSync(partial) || fs.statSync(partial).size === 0) throw new Error(`no code cache written:\n${output}`);
  fs.renameSync(partial, target);
  return fs.statSync(target).size;
}

async function main() {
  const modules = await bundle();
  const size = fs.statSync(path.join(outDir, 'functions.js')).size;
  let cache = 'no code cache';
  try {
    cache = `code cache ${Math.round((await writeCodeCache()) / 1024)} KiB`;
  } catch (err) {
    // A start without a cache is correct, only slower; a deploy must not fail for it.
    process.stderr.write(
      `deploy/bundle: WARNING: no code cache (${err.message.split('\n')[0]}); the functions start without one\n${err.message}\n`,
    );
  }
  process.stdout.write(`deploy/bundle: ${modules} modules in dist/deploy/functions.js (${Math.round(size / 1024)} KiB), ${cache}\n`);
}

main().catch((err) => fail(err.stack || String(err)));
