#!/usr/bin/env node
/**
 * The Node.js versions the package supports besides the one running it (package.json `engines`:
 * the maintained LTS lines, the newest of which Terraform deploys), as binaries from the npm
 * registry: the package `node-<platform>-<arch>@MAJOR` ships the official `bin/node`. Each is
 * installed once into .local/node<MAJOR>/ (git-ignored) with `npm install --no-save --prefix`,
 * and reused afterwards; nothing else about the machine changes.
 *
 * The tests that run the functions, the deployed bundle and the packed package on every supported
 * Node (test/integration/nodeVersions.test.ts, test/deploy/deployedTree.test.ts,
 * test/integration/package.test.ts) call this script, so `npm test` installs what it needs.
 *
 * Plain Node.js with built-ins only.
 * Usage: node scripts/node-versions.js            install if missing, print "MAJOR PATH VERSION" lines
 *        node scripts/node-versions.js --json     the same as {"22": "/abs/path/node", …}
 *        node scripts/node-versions.js MAJOR FILE [ARGS…]   run a script on that Node (npm run node-versions -- 24 dist/scripts/start.js)
 */
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

/** The LTS majors the package supports (`engines`); the tests run on each as well as on the machine's own Node. */
const SUPPORTED_MAJORS = ['22', '24'];

const root = path.resolve(__dirname, '..');
const base = path.join(root, '.local');

function fail(message) {
  process.stderr.write(`node-versions: ${message}\n`);
  process.exit(1);
}

function packageName() {
  return `node-${process.platform}-${process.arch}`;
}

function binaryIn(dir) {
  return path.join(dir, 'node_modules', packageName(), 'bin', process.platform === 'win32' ? 'node.exe' : 'node');
}

/** The full version a binary reports, or undefined when it does not run. */
function versionOf(bin) {
  if (!fs.existsSync(bin)) return undefined;
  const r = spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The path of a working Node MAJOR binary, installed from the npm registry when missing. */
function ensure(major) {
  const dir = path.join(base, `node${major}`);
  const bin = binaryIn(dir);
  const have = versionOf(bin);
  if (have && have.split('.')[0] === major) return { bin, version: have };

  // Installed beside the final place and renamed into it: a run that is interrupted, or two that
  // race, never leave a half-installed directory behind under the final name.
  fs.mkdirSync(base, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(base, `.node${major}-`));
  const spec = `${packageName()}@${major}`;
  process.stderr.write(`node-versions: installing ${spec} from the npm registry into ${path.relative(root, dir)}/ …\n`);
  const npm = spawnSync(
    'npm',
    ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', '--prefix', tmp, spec],
    { cwd: tmp, encoding: 'utf8', timeout: 600_000 },
  );
  if (npm.status !== 0) {
    fs.rmSync(tmp, { recursive: true, force: true });
    fail(
      `could not install ${spec} (npm ${npm.error ? npm.error.message : `exited with ${npm.status}`}):\n${npm.stdout || ''}${npm.stderr || ''}` +
        `The tests run the functions on Node ${SUPPORTED_MAJORS.join(' and ')} as well; they need the npm registry once to fetch them.`,
    );
  }
  const got = versionOf(binaryIn(tmp));
  if (!got || got.split('.')[0] !== major) {
    fs.rmSync(tmp, { recursive: true, force: true });
    fail(`${spec} installed, but its bin/node reports ${got ?? 'nothing'} instead of a Node ${major}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    // Another run finished first: use its copy.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (versionOf(bin)?.split('.')[0] !== major) throw err;
  }
  return { bin, version: versionOf(bin) };
}

function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--help' || args[0] === '-h') {
    process.stdout.write(
      'usage: node scripts/node-versions.js [--json]\n       node scripts/node-versions.js MAJOR FILE [ARGS…]\n' +
        `Installs (once, into .local/) and lists the Node binaries of the supported majors: ${SUPPORTED_MAJORS.join(', ')}.\n`,
    );
    return;
  }
  if (args.length > 0 && /^\d+$/.test(args[0])) {
    if (!SUPPORTED_MAJORS.includes(args[0])) fail(`Node ${args[0]} is not one of the supported majors (${SUPPORTED_MAJORS.join(', ')})`);
    const { bin } = ensure(args[0]);
    const r = spawnSync(bin, args.slice(1), { stdio: 'inherit' });
    process.exit(r.status ?? 1);
  }
  const found = SUPPORTED_MAJORS.map((major) => ({ major, ...ensure(major) }));
  if (args.includes('--json')) process.stdout.write(`${JSON.stringify(Object.fromEntries(found.map((f) => [f.major, f.bin])))}\n`);
  else for (const f of found) process.stdout.write(`${f.major} ${f.bin} v${f.version}\n`);
}

main();
