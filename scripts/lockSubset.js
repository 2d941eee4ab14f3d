/**
 * The part of a package-lock.json (lockfileVersion 2 or 3) that a smaller set of top-level
 * dependencies needs: every entry reachable from them through `dependencies`,
 * `optionalDependencies` and required `peerDependencies`, resolved the way Node and npm resolve
 * (the nearest `node_modules/NAME` above the dependent). Entries keep their place and fields, so
 * `npm ci` installs exactly the versions the full lockfile pins, from the same cache.
 *
 * Used by scripts/package-deploy.js (the upload Cloud Build installs: the functions' dependencies
 * and only the devDependencies the build needs) and by test/integration/package.test.ts's
 * installed-size measurement. Plain Node.js, built-ins only.
 */
'use strict';

/** Where `name`, needed by the package at `from` ("" is the root), is installed, or undefined. */
function resolveIn(packages, from, name) {
  let dir = from;
  for (;;) {
    const candidate = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (dir === '') return undefined;
    const cut = dir.lastIndexOf('/node_modules/');
    dir = cut === -1 ? '' : dir.slice(0, cut);
  }
}

/** The names an entry needs installed: its dependencies, optional ones, and peers not marked optional. */
function needs(entry) {
  const optionalPeers = entry.peerDependenciesMeta || {};
  return [
    ...Object.keys(entry.dependencies || {}).map((name) => ({ name, optional: false, peer: false })),
    ...Object.keys(entry.optionalDependencies || {}).map((name) => ({ name, optional: true, peer: false })),
    ...Object.keys(entry.peerDependencies || {})
      .filter((name) => !(optionalPeers[name] && optionalPeers[name].optional))
      .map((name) => ({ name, optional: false, peer: true })),
  ];
}

/**
 * npm's flags for each entry, as `npm install` writes them: `dev` when only the root's
 * devDependencies lead to it, `optional` when only optional dependencies do, `devOptional` when
 * only paths that are one or the other do, `peer` when only peer dependencies do. The flags of the
 * full lockfile describe the full tree; a subset with other root dependencies needs its own.
 */
function withFlags(packages) {
  const root = packages[''];
  const rootEdges = [
    ...Object.keys(root.dependencies || {}).map((name) => ({ name, dev: false, optional: false, peer: false })),
    ...Object.keys(root.optionalDependencies || {}).map((name) => ({ name, dev: false, optional: true, peer: false })),
    ...Object.keys(root.devDependencies || {}).map((name) => ({ name, dev: true, optional: false, peer: false })),
  ];
  /** The entries reached from the root through edges `allowed` lets pass (a path's own traits accumulate). */
  const reach = (allowed) => {
    const seen = new Set();
    const queue = [];
    const go = (from, edge) => {
      if (!allowed(edge)) return;
      const at = resolveIn(packages, from, edge.name);
      if (at === undefined || seen.has(at)) return;
      seen.add(at);
      queue.push(at);
    };
    for (const edge of rootEdges) go('', edge);
    while (queue.length > 0) {
      const at = queue.shift();
      for (const need of needs(packages[at])) go(at, { ...need, dev: false });
    }
    return seen;
  };
  const notDev = reach((e) => !e.dev);
  const notOptional = reach((e) => !e.optional);
  const neither = reach((e) => !e.dev && !e.optional);
  const notPeer = reach((e) => !e.peer);
  const out = {};
  for (const [at, entry] of Object.entries(packages)) {
    if (at === '') {
      out[at] = entry;
      continue;
    }
    const { dev: _dev, optional: _optional, devOptional: _devOptional, peer: _peer, ...rest } = entry;
    const flags = {};
    const dev = !notDev.has(at);
    const optional = !notOptional.has(at);
    if (dev) flags.dev = true;
    if (optional) flags.optional = true;
    if (!dev && !optional && !neither.has(at)) flags.devOptional = true;
    if (!notPeer.has(at)) flags.peer = true;
    out[at] = insertFlags(rest, flags);
  }
  return out;
}

/** npm writes the flags after `integrity` (or `resolved`/`version`), before `license` and the rest. */
function insertFlags(entry, flags) {
  const keys = Object.keys(entry);
  const after = ['version', 'resolved', 'integrity', 'link'];
  let cut = 0;
  keys.forEach((k, i) => {
    if (after.includes(k)) cut = i + 1;
  });
  const out = {};
  keys.slice(0, cut).forEach((k) => (out[k] = entry[k]));
  Object.assign(out, flags);
  keys.slice(cut).forEach((k) => (out[k] = entry[k]));
  return out;
}

/**
 * A new lockfile object whose root entry is `root` (name, version, dependency maps…) and whose
 * packages are those reachable from `root`'s dependency maps. Throws when a required package is
 * not in the lockfile (the subset would not install).
 */
function subsetLock(lock, root) {
  if (!lock || !lock.packages || (lock.lockfileVersion !== 2 && lock.lockfileVersion !== 3)) {
    throw new Error('package-lock.json: lockfileVersion 2 or 3 with a "packages" map expected');
  }
  const packages = lock.packages;
  const keep = new Set();
  const queue = [];
  const visit = (from, { name, optional }) => {
    const at = resolveIn(packages, from, name);
    if (at === undefined) {
      if (optional) return;
      throw new Error(`package-lock.json has no entry for ${name} (needed by ${from || 'the root'})`);
    }
    if (keep.has(at)) return;
    keep.add(at);
    queue.push(at);
  };
  for (const field of ['dependencies', 'devDependencies', 'optionalDependencies', 'peerDependencies']) {
    for (const name of Object.keys(root[field] || {})) visit('', { name, optional: field === 'optionalDependencies' });
  }
  while (queue.length > 0) {
    const at = queue.shift();
    const entry = packages[at];
    // A link's target is a package of its own, not under node_modules.
    if (entry.link && entry.resolved && packages[entry.resolved]) keep.add(entry.resolved);
    for (const need of needs(entry)) visit(at, need);
  }
  const out = { '': root };
  for (const [at, entry] of Object.entries(packages)) if (at !== '' && keep.has(at)) out[at] = entry;
  return { name: root.name, version: root.version, lockfileVersion: lock.lockfileVersion, requires: true, packages: withFlags(out) };
}

module.exports = { subsetLock, resolveIn };
