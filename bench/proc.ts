import { type ChildProcess, type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { isListening } from '../scripts/emulators';
import { join } from 'node:path';

/** The repository root, from dist-bench/bench/ or from bench/ (ts-jest). */
export const ROOT = join(__dirname, '..', __dirname.includes('dist-bench') ? '..' : '');

export const FUNCTIONS_FRAMEWORK = join(ROOT, 'node_modules', '@google-cloud', 'functions-framework', 'build', 'src', 'main.js');
export const FUNCTIONS_SOURCE = join(ROOT, 'dist', 'functions', 'index.js');
/** Compiled helpers of the harness (child processes run these). */
export const BENCH_JS = join(ROOT, 'dist-bench', 'bench');

export interface ServerProcess {
  url: string;
  port: number;
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Every child the harness started and has not stopped yet: stopped on exit, whatever happens. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) if (c.pid) killGroup(c.pid, 'SIGKILL');
});

/** `node args…` in its own process group, piped, tracked so that an exiting benchmark ends it. */
function spawnNode(
  args: string[],
  env: Record<string, string | undefined>,
  nodeBin: string = process.execPath,
): ChildProcessByStdio<null, Readable, Readable> {
  const child = spawn(nodeBin, args, {
    cwd: ROOT,
    env: { ...process.env, METADATA_SERVER_DETECTION: 'none', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  return child;
}

/**
 * Spawns `node args…` in its own process group (stop() ends the group) and waits until it listens
 * on `port`. Its output is kept (the last 100 kB) for failure messages and drained, so a chatty
 * server never blocks on a full pipe. `nodeBin` is the Node it runs on (--server-node), else this one.
 */
export async function startServer(
  args: string[],
  env: Record<string, string>,
  port: number,
  what: string,
  nodeBin?: string,
): Promise<ServerProcess> {
  const child = spawnNode(args, env, nodeBin);
  let text = '';
  const collect = (b: Buffer) => {
    text = (text + b.toString()).slice(-100_000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      killGroup(child.pid!, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    killGroup(child.pid!, 'SIGKILL');
    live.delete(child);
  };
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) {
      live.delete(child);
      throw new Error(`${what} exited with ${child.exitCode}:\n${text}`);
    }
    if (await isListening(port)) return { url: `http://127.0.0.1:${port}`, port, pid: child.pid!, output: () => text, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`${what} did not listen on ${port} within 60 s:\n${text}`);
}

/** Runs `node args…` to completion (own process group, killed at the deadline) and returns its stdout. */
export function runNode(
  args: string[],
  env: Record<string, string | undefined>,
  timeoutMs: number,
): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawnNode(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-50_000)));
    const timer = setTimeout(() => {
      killGroup(child.pid!, 'SIGKILL');
      reject(new Error(`node ${args.join(' ')} timed out after ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      killGroup(child.pid!, 'SIGKILL');
      live.delete(child);
      resolve({ stdout, stderr, code });
    });
  });
}

/** The last line of `stdout` that parses as JSON. */
export function lastJson<T>(stdout: string): T {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    try {
      return JSON.parse(line) as T;
    } catch {
      // not the result line
    }
  }
  throw new Error(`no JSON result in output:\n${stdout.slice(-2000)}`);
}
