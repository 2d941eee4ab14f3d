import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on the loopback interface, chosen by the kernel. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Whether something accepts connections on this loopback port. */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * `datastore` is the Firestore emulator in Datastore mode (what the tests and the launcher use);
 * `datastore-legacy` is the older Cloud Datastore emulator, kept for the one thing the Firestore one
 * cannot do: transactions opened by their first lookup, the path production takes (docs/testing.md).
 */
export type EmulatorName = 'datastore' | 'datastore-legacy' | 'pubsub';

export interface Emulator {
  name: EmulatorName;
  host: string;
  pid: number;
  /** Stops the emulator and its Java child (the whole process group). */
  stop(): Promise<void>;
}

export function requireGcloud(): void {
  const probe = spawnSync('gcloud', ['--version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'gcloud is not installed or not on PATH. The tests and `npm start -- --emulators` need the Google Cloud CLI ' +
        'with the Firestore and Pub/Sub emulators (Debian packages google-cloud-cli, ' +
        'google-cloud-cli-firestore-emulator, google-cloud-cli-pubsub-emulator) and Java.',
    );
  }
}

async function waitReady(host: string, child: ChildProcess, name: string, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} emulator exited with ${child.exitCode}:\n${output()}`);
    try {
      const res = await fetch(`http://${host}/`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name} emulator did not become ready on ${host} within ${timeoutMs} ms:\n${output()}`);
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Starts a gcloud emulator on a free port in its own process group, so that stopping it also
 * stops the Java process gcloud spawns (no orphans).
 */
export async function startEmulator(name: EmulatorName, options: { port?: number; timeoutMs?: number } = {}): Promise<Emulator> {
  requireGcloud();
  const port = options.port ?? (await freePort());
  const host = `127.0.0.1:${port}`;
  // The legacy emulator keeps a project directory; a private one, so parallel runs never share it.
  // Consistency 1.0: its default (0.9) randomly hides fresh writes from queries, which production does not.
  const dataDir = name === 'datastore-legacy' ? mkdtempSync(join(tmpdir(), 'datastore-legacy-')) : undefined;
  const args =
    name === 'datastore'
      ? ['emulators', 'firestore', 'start', '--database-mode=datastore-mode', `--host-port=${host}`]
      : name === 'datastore-legacy'
        ? [
            'beta',
            'emulators',
            'datastore',
            'start',
            '--project=session-test',
            `--host-port=${host}`,
            '--no-store-on-disk',
            '--consistency=1.0',
            `--data-dir=${dataDir}`,
          ]
        : ['beta', 'emulators', 'pubsub', 'start', `--host-port=${host}`];
  const child = spawn('gcloud', args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const collect = (b: Buffer) => {
    out = (out + b.toString()).slice(-20_000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const pid = child.pid!;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    killGroup(pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    // gcloud may exit before its Java child: make sure the whole group is gone.
    killGroup(pid, 'SIGKILL');
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitReady(host, child, name, () => out, options.timeoutMs ?? 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  return { name, host, pid, stop };
}
