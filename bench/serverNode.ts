/**
 * `--server-node=24|22|current`: the Node.js every server stack of the request, latency and profile
 * benchmarks runs on. The default is the deployed runtime, Terraform's `nodejs_runtime` default
 * (terraform/variables.tf, "nodejs24"): what the servers run on decides how much functions-framework's
 * per-request AsyncLocalStorage costs (promise hooks on Node 20/22, AsyncContextFrame on Node 24).
 * "current" is the Node running the benchmark. Binaries of the other majors come from
 * scripts/node-versions.js (installed once from the npm registry into .local/).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './proc';

export interface ServerNode {
  /** What was asked for: a major, or "current". */
  spec: string;
  /** The binary the servers are spawned with. */
  bin: string;
  /** Its `process.version`, e.g. v24.22.3. */
  version: string;
}

/** The major Terraform deploys (terraform/variables.tf `nodejs_runtime` default); 24 when it cannot be read. */
export function deployedNodeMajor(): string {
  try {
    const tf = readFileSync(join(ROOT, 'terraform', 'variables.tf'), 'utf8');
    const block = /variable\s+"nodejs_runtime"\s*\{[\s\S]*?default\s*=\s*"nodejs(\d+)"/.exec(tf);
    if (block) return block[1]!;
  } catch {
    // no Terraform beside the benchmark: the documented default
  }
  return '24';
}

function versionOf(bin: string): string {
  const r = spawnSync(bin, ['-p', 'process.version'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${bin} -p process.version failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** The binary and version of `spec` (a major, "current", or undefined for the deployed major). */
export function resolveServerNode(spec: string | undefined): ServerNode {
  const want = spec ?? deployedNodeMajor();
  if (want === 'current' || want === process.versions.node.split('.')[0]) {
    return { spec: want, bin: process.execPath, version: process.version };
  }
  if (!/^\d+$/.test(want)) throw new Error(`--server-node must be a major (24, 22) or "current", not ${want}`);
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'node-versions.js'), '--json'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/node-versions.js failed:\n${r.stderr}`);
  const bins = JSON.parse(r.stdout) as Record<string, string>;
  const bin = bins[want];
  if (!bin) throw new Error(`--server-node: no Node ${want} (scripts/node-versions.js has ${Object.keys(bins).join(', ')})`);
  return { spec: want, bin, version: versionOf(bin) };
}
