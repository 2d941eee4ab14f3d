import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './functionsFramework';

/** A supported Node besides the one running the tests, installed from the npm registry by scripts/node-versions.js. */
export interface ExtraNode {
  major: string;
  /** Absolute path of its `node` binary. */
  bin: string;
}

let cached: ExtraNode[] | undefined;

/**
 * The Node binaries of the supported LTS lines (package.json `engines`), installed into .local/ on
 * first use (about 30 s and 185 MB each, once per checkout) and reused afterwards. Fails with the
 * script's message when they cannot be installed: these tests never skip.
 */
export function extraNodes(): ExtraNode[] {
  if (!cached) {
    let out: string;
    try {
      out = execFileSync(process.execPath, [join(ROOT, 'scripts', 'node-versions.js'), '--json'], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 900_000,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`scripts/node-versions.js failed: ${e.stderr || e.message}`, { cause: err });
    }
    cached = Object.entries(JSON.parse(out) as Record<string, string>).map(([major, bin]) => ({ major, bin }));
  }
  return cached;
}
