/**
 * What `npm start` started, written to `<state-dir>/launcher.json` so that the local tools
 * (`npm run mint-token`, `npm run cleanup`, `session-kill --local`) follow the ports, audience,
 * key and emulators of the running launcher instead of assuming the defaults.
 * Built-ins only: session-kill ships in the package, the launcher does not.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The state directory when SESSION_LOCAL_STATE_DIR is not set (relative to the working directory). */
export const DEFAULT_STATE_DIR = '.local';
/** The file name of the launcher's state inside the state directory. */
export const STATE_FILE = 'launcher.json';

/** What `npm start` records of the stack it runs (ports, project, topic, admin key, emulators). */
export interface LauncherState {
  /** The launcher's process id, to tell a running launcher from a stale file. */
  pid: number;
  startedAt: string;
  /** Absolute. */
  stateDir: string;
  project: string;
  topic: string;
  store: 'memory' | 'datastore';
  apiUrl: string;
  killUrl: string;
  cleanupUrl: string;
  /** The `aud` privileged tokens must carry (SESSION_ADMIN_AUDIENCE of the API). */
  audience: string;
  adminEmail: string;
  jwksFile: string;
  privateKeyFile: string;
  /** Only with --emulators. */
  datastoreEmulatorHost?: string;
  pubsubEmulatorHost?: string;
  /** Only on the memory store: where kill messages are pushed (SESSION_KILL_PUSH_URL). */
  killPushUrl?: string;
}

/**
 * The state directory the tools look in: SESSION_LOCAL_STATE_DIR, else `.local`.
 *
 * @example
 * stateDirFrom({ SESSION_LOCAL_STATE_DIR: '/tmp/stack-2' }); // '/tmp/stack-2'
 * stateDirFrom({}); // '.local'
 */
export function stateDirFrom(env: Record<string, string | undefined>): string {
  return env.SESSION_LOCAL_STATE_DIR?.trim() || DEFAULT_STATE_DIR;
}

/**
 * Writes `state` to `<state.stateDir>/launcher.json` (mode 0600, whole or not at all) and returns
 * the file's path: what `npm start` does once its stack is up, for the local tools to find it.
 *
 * @example
 * const file = writeLauncherState({ ...state, pid: process.pid, startedAt: new Date().toISOString() });
 */
export function writeLauncherState(state: LauncherState): string {
  mkdirSync(state.stateDir, { recursive: true });
  const file = join(state.stateDir, STATE_FILE);
  // Written whole, then renamed: a tool never reads half a file.
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return file;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A message for a person: what is missing and what to do (no state file, not one, or its launcher
 * is no longer running).
 *
 * @example
 * if (err instanceof NoLauncherError) process.stderr.write(`${err.message}\n`);
 */
export class NoLauncherError extends Error {}

/**
 * The state of the launcher that runs with this state directory; NoLauncherError if there is none.
 * A file left by a launcher that has exited counts as none.
 *
 * @example
 * const { apiUrl, audience } = readLauncherState(stateDirFrom(process.env));
 */
export function readLauncherState(stateDir: string): LauncherState {
  const file = join(resolve(stateDir), STATE_FILE);
  let state: LauncherState;
  try {
    state = JSON.parse(readFileSync(file, 'utf8')) as LauncherState;
  } catch {
    throw new NoLauncherError(
      `no launcher state in ${file}: run npm start first (with --state-dir DIR, set SESSION_LOCAL_STATE_DIR=DIR for the tools)`,
    );
  }
  if (typeof state.pid !== 'number' || typeof state.apiUrl !== 'string') throw new NoLauncherError(`${file} is not a launcher state file`);
  if (!running(state.pid))
    throw new NoLauncherError(`the launcher that wrote ${file} (pid ${state.pid}) is not running: run npm start again`);
  return state;
}
