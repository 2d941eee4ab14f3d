#!/usr/bin/env node
/**
 * Assembles build/deploy: exactly what Terraform zips and uploads to Cloud Functions.
 *
 * Cloud Build compiles the TypeScript itself (npm ci, then the package's `gcp-build` script: `npm run
 * build`, then deploy/bundle.js), so the upload holds sources, not dist/: the deployed JavaScript is
 * always built from the uploaded sources by the same compiler version the lockfile pins.
 *
 * The differences to the repository's package.json (and, to match it, its lockfile):
 *
 * - `main` names deploy/bundle.js's loader
 * (dist/deploy/index.cjs: one bundle of dist/functions/index.js with a V8 code cache, issue 15),
 * because the runtime starts `functions-framework --target=NAME` without --source and the framework
 * then loads the package's `main`. The repository's `main` is the library (dist/lib/index.js, as
 * `types` and the "." export): the package users embed (exports, `npm pack`) is unchanged by this,
 * and the bundle is never part of it. Local commands that run functions-framework on the
 * repository pass --source=dist/functions/index.js instead.
 * - The optional peer dependencies of the library (functions-framework, Pub/Sub: a service that
 *   embeds the library needs neither) are plain `dependencies` here: the functions need both at run
 *   time, and the buildpack prunes everything else (`npm prune --production`) after `gcp-build`.
 * - `devDependencies` keeps only what `gcp-build` needs (BUILD_DEV_DEPENDENCIES: the compiler, the
 *   bundler and type packages), not the test and tooling packages (jest, Stryker, Playwright…),
 *   which Cloud Build would otherwise install for each of the three functions on every deploy.
 * - package-lock.json is the repository's, cut to what these dependencies reach
 *   (scripts/lockSubset.js): the same versions, and the lockfile npm itself writes for this
 *   package.json (test/terraform checks that with `npm install --package-lock-only`).
 *
 * The repository's tsconfig.json also compiles scripts/ (local tooling such as the emulator
 * harness), which the functions never load. Rather than uploading that tooling, the deploy copy
 * gets a tsconfig.json whose include list keeps only the directories uploaded here; the script
 * fails if an uploaded source imports anything outside them.
 *
 * terraform/source.tf runs it on every plan as an `external` data source (`--terraform`): then the
 * only thing on stdout is the JSON object of strings that protocol asks for, and the archive
 * Terraform uploads is made from the directory named there, so an apply always ships the current
 * sources.
 *
 * Plain Node.js with built-ins only, so it runs without node_modules.
 * Usage: node scripts/package-deploy.js [--terraform]   (npm run package:deploy)
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { subsetLock } = require('./lockSubset');

const root = path.resolve(__dirname, '..');
const out = path.join(root, 'build', 'deploy');

/**
 * Directories the package's build script compiles: the functions' sources, and client/ (the browser
 * module, with a tsconfig of its own), since `gcp-build` runs the whole `build` and fails on a
 * directory it cannot find; and deploy/, the bundling step of `gcp-build` (plain JavaScript).
 */
const SOURCE_DIRS = ['lib', 'functions', 'bin', 'client', 'deploy'];
/** What functions-framework loads in the deployed tree; deploy/bundle.js writes it in `gcp-build`. */
const DEPLOYED_MAIN = 'dist/deploy/index.cjs';
/** The module deploy/bundle.js bundles behind DEPLOYED_MAIN: the one that registers the functions. */
const FUNCTIONS_ENTRY = 'dist/functions/index.js';
/**
 * devDependencies the upload keeps: what `gcp-build` runs (tsc, esbuild) and the type packages the
 * uploaded sources need (Node's; Express's, which functions-framework's types name). test/deploy builds
 * the upload from exactly these, so a type package missing here fails there.
 */
const BUILD_DEV_DEPENDENCIES = [/^typescript$/, /^esbuild$/, /^@types\/node$/, /^@types\/express$/];

function fail(message) {
  process.stderr.write(`package-deploy: ${message}\n`);
  process.exit(1);
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`cannot read ${path.relative(root, file)} as JSON: ${err.message}`);
  }
}

/** Hidden files, tests and compiler output have no place in the upload. */
function uploaded(name) {
  return !name.startsWith('.') && !/\.(test|spec)\.ts$/.test(name) && !name.endsWith('.tsbuildinfo');
}

function copyTree(from, to, copied) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!uploaded(entry.name)) continue;
    const src = path.join(from, entry.name);
    const dest = path.join(to, entry.name);
    // stat follows symlinks: the upload gets their content, never a link into the repository.
    const stat = fs.statSync(src);
    if (stat.isDirectory()) copyTree(src, dest, copied);
    else if (stat.isFile()) {
      fs.copyFileSync(src, dest);
      copied.push(path.relative(out, dest));
    }
  }
}

/** Relative module specifiers of a TypeScript source (import/export from, import(), require()). */
function relativeImports(text) {
  const found = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]*)['"]/gm;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) found.push(m[1]);
  return found;
}

function resolvesInside(fromFile, specifier) {
  const base = path.resolve(path.dirname(fromFile), specifier);
  if (!base.startsWith(out + path.sep)) return false;
  const candidates = [base, `${base}.ts`, `${base}.json`, path.join(base, 'index.ts')];
  // `import './x.js'` names the compiled file of ./x.ts.
  if (base.endsWith('.js')) candidates.push(`${base.slice(0, -3)}.ts`);
  return candidates.some((c) => fs.existsSync(c) && fs.statSync(c).isFile());
}

/** The package.json of the upload: the deployed `main`, the peers as dependencies, the build's devDependencies only. */
function deployedPackage(pkg) {
  const { peerDependencies = {}, peerDependenciesMeta: _meta, devDependencies = {}, ...rest } = pkg;
  const out = { ...rest, main: DEPLOYED_MAIN };
  out.dependencies = sorted({ ...peerDependencies, ...(pkg.dependencies || {}) });
  out.devDependencies = sorted(
    Object.fromEntries(Object.entries(devDependencies).filter(([name]) => BUILD_DEV_DEPENDENCIES.some((p) => p.test(name)))),
  );
  return out;
}

function sorted(map) {
  return Object.fromEntries(Object.entries(map).sort(([a], [b]) => a.localeCompare(b, 'en')));
}

/** The repository's lockfile cut to what the deployed package.json reaches, with its root entry to match. */
function deployedLock(lock, deployed) {
  const rootEntry = { ...(lock.packages && lock.packages['']) };
  for (const field of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies', 'peerDependenciesMeta']) {
    delete rootEntry[field];
    if (deployed[field] && Object.keys(deployed[field]).length > 0) rootEntry[field] = deployed[field];
  }
  return subsetLock(lock, rootEntry);
}

function main() {
  const pkg = readJson(path.join(root, 'package.json'));
  if (!pkg.scripts || !pkg.scripts['gcp-build'])
    fail('package.json has no "gcp-build" script; Cloud Build would upload uncompiled TypeScript');
  if (!pkg.scripts['gcp-build'].includes('deploy/bundle.js'))
    fail(`the "gcp-build" script does not run deploy/bundle.js, which writes ${DEPLOYED_MAIN} (the deployed main)`);

  const tsconfig = readJson(path.join(root, 'tsconfig.json'));
  if (tsconfig.extends || tsconfig.files || tsconfig.references) {
    fail('tsconfig.json uses extends/files/references, which this script does not carry over; extend the script');
  }
  const include = (tsconfig.include || []).filter((pattern) => SOURCE_DIRS.includes(pattern.split('/')[0]));
  if (include.length === 0) fail('tsconfig.json includes none of the uploaded directories');

  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });

  const copied = [];
  if (!fs.existsSync(path.join(root, 'package-lock.json')))
    fail('package-lock.json is missing (Cloud Build installs exactly what the lockfile pins)');
  if (typeof pkg.main !== 'string') fail('package.json has no "main" to point at the deployed loader');
  const deployed = deployedPackage(pkg);
  let lock;
  try {
    lock = deployedLock(readJson(path.join(root, 'package-lock.json')), deployed);
  } catch (err) {
    fail(`cannot cut package-lock.json to the deployed dependencies: ${err.message}`);
  }
  fs.writeFileSync(path.join(out, 'package.json'), `${JSON.stringify(deployed, null, 2)}\n`);
  fs.writeFileSync(path.join(out, 'package-lock.json'), `${JSON.stringify(lock, null, 2)}\n`);
  copied.push('package.json', 'package-lock.json');
  fs.writeFileSync(path.join(out, 'tsconfig.json'), `${JSON.stringify({ compilerOptions: tsconfig.compilerOptions, include }, null, 2)}\n`);
  copied.push('tsconfig.json');

  for (const dir of SOURCE_DIRS) {
    const src = path.join(root, dir);
    // bin/ may not exist yet in a checkout; git does not keep empty directories.
    if (fs.existsSync(src)) copyTree(src, path.join(out, dir), copied);
  }

  // The deployed `main` runs the bundle of FUNCTIONS_ENTRY, not the repository's `main` (the library): that source must be here.
  const entry = path.join(out, FUNCTIONS_ENTRY.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
  if (!fs.existsSync(entry)) {
    fail(`${path.relative(out, entry)} (the source of ${FUNCTIONS_ENTRY}, which deploy/bundle.js bundles) is not among the uploaded files`);
  }

  const outside = [];
  for (const file of copied.filter((f) => f.endsWith('.ts'))) {
    const abs = path.join(out, file);
    for (const spec of relativeImports(fs.readFileSync(abs, 'utf8'))) {
      if (!resolvesInside(abs, spec)) outside.push(`${file} imports ${spec}`);
    }
  }
  if (outside.length > 0) {
    fail(
      `uploaded sources import files that are not uploaded (add the directory to SOURCE_DIRS or move the code):\n  ${outside.join('\n  ')}`,
    );
  }

  if (process.argv.includes('--terraform')) {
    process.stdout.write(`${JSON.stringify({ source_dir: out, files: String(copied.length) })}\n`);
  } else {
    process.stdout.write(`package-deploy: ${copied.length} files in ${path.relative(root, out)}\n`);
  }
}

main();
