import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { freePort, isListening } from '../../scripts/emulators';

export const ROOT = join(__dirname, '..', '..');
const SOURCE_DIRS = ['lib', 'functions', 'scripts', 'bin'];

function sources(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

function stale(): boolean {
  return SOURCE_DIRS.flatMap((d) => sources(join(ROOT, d))).some((ts) => {
    const js = join(ROOT, 'dist', relative(ROOT, ts)).replace(/\.ts$/, '.js');
    return !existsSync(js) || statSync(js).mtimeMs < statSync(ts).mtimeMs;
  });
}

/**
 * The tests that run functions-framework or the CLI as a child process need the compiled dist/.
 * `npm test` builds first; a bare `npx jest` may not have, so this builds when any source is newer
 * than its output. A lock directory keeps parallel jest workers from compiling over each other's
 * running children.
 */
export function ensureBuilt(): void {
  const lock = join(ROOT, 'dist', '.test-build-lock');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  for (let i = 0; i < 1200; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (i === 1199) throw new Error(`could not take ${lock}; remove it if no test is running`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
  try {
    if (!stale()) return;
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    if (tsc.status !== 0) throw new Error(`tsc -p tsconfig.json failed:\n${tsc.stdout}${tsc.stderr}`);
  } finally {
    rmdirSync(lock);
  }
}

export interface LogLine {
  severity?: string;
  message?: string;
  [field: string]: unknown;
}

export interface FunctionProcess {
  port: number;
  /** The node process running functions-framework (leader of its own process group). */
  pid: number;
  url: string;
  /** Structured log lines written so far (stdout and stderr). */
  logs(): LogLine[];
  /** Everything written so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs one entry point under the real functions-framework, as Cloud Functions does
 * (`--target`, `--signature-type`, `--source`), in its own process group so stop() also ends
 * anything it spawned. `node` is the binary that runs it (default: the one running the tests).
 */
export async function startFunction(
  target: string,
  signatureType: 'http' | 'cloudevent',
  env: Record<string, string>,
  port?: number,
  node: string = process.execPath,
): Promise<FunctionProcess> {
  const p = port ?? (await freePort());
  const child: ChildProcess = spawn(
    node,
    [
      join(ROOT, 'node_modules', '@google-cloud', 'functions-framework', 'build', 'src', 'main.js'),
      `--target=${target}`,
      `--signature-type=${signatureType}`,
      `--port=${p}`,
      `--source=${join(ROOT, 'dist', 'functions', 'index.js')}`,
    ],
    { cwd: ROOT, env: { ...process.env, METADATA_SERVER_DETECTION: 'none', ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  const lines: LogLine[] = [];
  let partial = '';
  const collect = (chunk: Buffer) => {
    const s = chunk.toString();
    text = (text + s).slice(-200_000);
    partial += s;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      try {
        const parsed: unknown = JSON.parse(line);
        if (typeof parsed === 'object' && parsed !== null) lines.push(parsed as LogLine);
      } catch {
        // functions-framework's own plain-text lines
      }
    }
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, 5000);
    await exited;
    clearTimeout(timer);
  };
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${target} exited with ${child.exitCode}:\n${text}`);
    if (await isListening(p))
      return { port: p, pid: child.pid!, url: `http://127.0.0.1:${p}`, logs: () => lines, output: () => text, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`${target} did not listen on ${p}:\n${text}`);
}
