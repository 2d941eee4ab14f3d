import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../scripts/emulators';
import { ROOT } from './functionsFramework';

const START = join(ROOT, 'dist', 'scripts', 'start.js');

export interface Launcher {
  child: ChildProcess;
  /** The ports of sessionApi, killSessionByUser, startClearSessions and the demo page. */
  ports: { api: number; kill: number; cleanup: number; demo: number };
  apiUrl: string;
  demoUrl: string;
  stateDir: string;
  /** The privileged token the launcher printed (ADMIN_TOKEN=…). */
  adminToken: string;
  output(): string;
  /** Ctrl-C, as a person stops it; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * `npm start` (dist/scripts/start.js) in its default mode (in-memory store, kills pushed straight to
 * the kill function) on free ports, with `extra` options appended; resolves once it printed its
 * ADMIN_TOKEN line, i.e. everything listens. The emulators of the test run are hidden from it.
 */
export async function startLauncher(extra: string[] = [], env: Record<string, string> = {}): Promise<Launcher> {
  if (!existsSync(START)) throw new Error('dist/ is missing: npm test builds it first (npm run build)');
  const ports = { api: await freePort(), kill: await freePort(), cleanup: await freePort(), demo: await freePort() };
  const stateDir = mkdtempSync(join(tmpdir(), 'launcher-'));
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const name of ['DATASTORE_EMULATOR_HOST', 'PUBSUB_EMULATOR_HOST', 'GOOGLE_CLOUD_PROJECT', 'SESSION_NAMESPACE', 'PORT'])
    if (!(name in env)) delete childEnv[name];
  const args = [
    ...['--port', `${ports.api}`, '--kill-port', `${ports.kill}`, '--cleanup-port', `${ports.cleanup}`],
    ...['--demo-port', `${ports.demo}`, '--state-dir', stateDir],
    ...extra,
  ];
  const child = spawn(process.execPath, [START, ...args], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr.on('data', (b: Buffer) => (text += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  const deadline = Date.now() + 60_000;
  while (!/ADMIN_TOKEN=\S+/.test(text)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`npm start did not start:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    ports,
    apiUrl: `http://localhost:${ports.api}`,
    demoUrl: `http://localhost:${ports.demo}`,
    stateDir,
    adminToken: /ADMIN_TOKEN=(\S+)/.exec(text)![1],
    output: () => text,
    stop,
  };
}
