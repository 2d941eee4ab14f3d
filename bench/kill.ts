/**
 * Benchmark (not a test): a kill of N sessions of one user (default 5,000), end to end — publish to
 * the Pub/Sub emulator, push subscription, killSessionByUser under functions-framework (compiled
 * dist/), Firestore emulator — timed from the publish call to the function's "kill finished" log
 * line. Measured in the same run for comparison: the engine deleting the same number of sessions
 * in-process (no Pub/Sub, no function), and the plain sequential loop (query 500, delete, repeat).
 *
 *   npx tsc -p tsconfig.json && npx tsc -p bench/tsconfig.json && node dist-bench/bench/kill.js [--sessions N] [--rounds R]
 *
 * Starts its own emulators unless DATASTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST are set.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Datastore } from '@google-cloud/datastore';
import { PubSub } from '@google-cloud/pubsub';
import { type Emulator, freePort, startEmulator } from '../scripts/emulators';
import { batchDelete, killSelector } from '../lib/jobs/batchDelete';
import { systemClock } from '../lib/core/clock';
import { DatastoreSessionStore } from '../lib/store/datastoreStore';
import { emptyData } from '../lib/core/json';
import type { SessionStore, StoredSession } from '../lib/store/sessionStore';
import { plainDeleteLoop } from './plainDelete';

const { values } = parseArgs({ options: { sessions: { type: 'string', default: '5000' }, rounds: { type: 'string', default: '3' } } });
const N = Number(values.sessions);
const ROUNDS = Number(values.rounds);
const PROJECT = process.env.GOOGLE_CLOUD_PROJECT ?? 'session-bench';
/** The repository root, from dist-bench/bench/. */
const ROOT = join(__dirname, '..', '..');

function store(ds: Datastore, namespace: string): DatastoreSessionStore {
  return new DatastoreSessionStore({ datastore: ds, kind: 'viur-session', namespace, timeoutMs: 60_000, separateBegin: true });
}

async function seedUser(s: SessionStore, user: string, n: number): Promise<void> {
  const now = Date.now();
  const session = (i: number): StoredSession => ({
    data: emptyData(),
    user,
    lastSeen: now - 60_000,
    createdAt: now - 3600_000 - i,
    expiresAt: now + 3600_000,
    staticKeyDigest: 'ab'.repeat(32),
    securityKeyDigests: [],
    userAgent: null,
  });
  const starts: number[] = [];
  for (let i = 0; i < n; i += 500) starts.push(i);
  for (let c = 0; c < starts.length; c += 4) {
    await Promise.all(
      starts.slice(c, c + 4).map((start) => {
        const put = Array.from({ length: Math.min(500, n - start) }, (_, j) => ({
          key: `${user}-${start + j}-${randomBytes(4).toString('hex')}`,
          session: session(start + j),
        }));
        return s.update(null, () => ({ writes: { put, delete: [] }, result: undefined }));
      }),
    );
  }
}

interface LogLine {
  message?: string;
  messageId?: string;
  continuationMessageId?: string;
  deleted?: number;
  batches?: number;
  elapsedMs?: number;
}

async function startFunction(env: Record<string, string>, port: number): Promise<{ logs: LogLine[]; stop: () => void }> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'node_modules', '@google-cloud', 'functions-framework', 'build', 'src', 'main.js'),
      '--target=killSessionByUser',
      '--signature-type=cloudevent',
      `--port=${port}`,
      `--source=${join(ROOT, 'dist', 'functions', 'index.js')}`,
    ],
    { cwd: ROOT, env: { ...process.env, METADATA_SERVER_DETECTION: 'none', ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: LogLine[] = [];
  let partial = '';
  const collect = (b: Buffer) => {
    partial += b.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // plain text from functions-framework
      }
    }
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const stop = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  };
  process.once('exit', stop);
  for (let i = 0; i < 300; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) return { logs, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  stop();
  throw new Error('killSessionByUser did not start');
}

/** Waits for the end of the chain that starts with `id` (continuations followed); bounded. */
async function finished(logs: LogLine[], id: string, timeoutMs = 600_000): Promise<{ line: LogLine; invocations: number }> {
  const deadline = Date.now() + timeoutMs;
  const ids = [id];
  while (Date.now() < deadline) {
    const current = ids[ids.length - 1];
    const done = logs.find((l) => l.message === 'kill finished' && l.messageId === current);
    if (done) return { line: done, invocations: ids.length };
    const next = logs.find((l) => l.message === 'work continues in a follow-up message' && l.messageId === current);
    if (next?.continuationMessageId) ids.push(next.continuationMessageId);
    else await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`kill ${id} did not finish`);
}

function plainLoop(s: SessionStore, user: string): Promise<number> {
  return plainDeleteLoop(s, killSelector(user, Date.now()));
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'functions', 'index.js'))) throw new Error('build first: npx tsc -p tsconfig.json');
  process.env.METADATA_SERVER_DETECTION ??= 'none';
  const emulators: Emulator[] = [];
  if (!process.env.DATASTORE_EMULATOR_HOST) {
    const e = await startEmulator('datastore');
    emulators.push(e);
    process.env.DATASTORE_EMULATOR_HOST = e.host;
  }
  if (!process.env.PUBSUB_EMULATOR_HOST) {
    const e = await startEmulator('pubsub');
    emulators.push(e);
    process.env.PUBSUB_EMULATOR_HOST = e.host;
  }
  let fn: { logs: LogLine[]; stop: () => void } | undefined;
  const pubsub = new PubSub({ projectId: PROJECT });
  try {
    const ds = new Datastore({ projectId: PROJECT });
    const namespace = `killbench-${randomBytes(4).toString('hex')}`;
    const s = store(ds, namespace);
    const topicName = `killbench-${randomBytes(4).toString('hex')}`;
    const port = await freePort();
    fn = await startFunction({ GOOGLE_CLOUD_PROJECT: PROJECT, SESSION_NAMESPACE: namespace, SESSION_KILL_TOPIC: topicName }, port);
    const [topic] = await pubsub.createTopic(topicName);
    await topic.createSubscription(`${topicName}-push`, {
      pushConfig: { pushEndpoint: `http://127.0.0.1:${port}/projects/${PROJECT}/topics/${topicName}` },
      ackDeadlineSeconds: 600,
    });

    // Warm-up, not measured: the function's first invocation loads the Datastore client and connects.
    await seedUser(s, 'warm', 200);
    await finished(fn.logs, await topic.publishMessage({ data: Buffer.from('{"user":"warm"}') }));
    await engineRun(s, 'warm-direct', 200);

    const rows: Array<Record<string, number | string>> = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const user = `victim-${round}`;
      await seedUser(s, user, N);
      const t0 = performance.now();
      const id = await topic.publishMessage({ data: Buffer.from(JSON.stringify({ user })) });
      const { line, invocations } = await finished(fn.logs, id);
      const e2e = performance.now() - t0;
      if (line.deleted !== N) throw new Error(`the kill deleted ${line.deleted} of ${N}`);
      rows.push({
        method: 'kill via Pub/Sub push + function',
        round,
        ms: Math.round(e2e),
        functionMs: line.elapsedMs ?? NaN,
        batches: line.batches ?? NaN,
        invocations,
      });

      const direct = await engineRun(s, `direct-${round}`, N);
      rows.push({ method: 'engine in-process (no Pub/Sub)', round, ms: direct, functionMs: NaN, batches: NaN, invocations: 1 });

      await seedUser(s, `plain-${round}`, N);
      const tp = performance.now();
      const deleted = await plainLoop(s, `plain-${round}`);
      if (deleted !== N) throw new Error(`plain loop deleted ${deleted}`);
      rows.push({
        method: 'plain loop in-process',
        round,
        ms: Math.round(performance.now() - tp),
        functionMs: NaN,
        batches: NaN,
        invocations: 1,
      });
      process.stderr.write(`round ${round} done\n`);
    }
    console.table(rows);
    const med = (m: string) => median(rows.filter((r) => r.method === m).map((r) => Number(r.ms)));
    const e2e = med('kill via Pub/Sub push + function');
    const direct = med('engine in-process (no Pub/Sub)');
    const plain = med('plain loop in-process');
    const summary = {
      sessions: N,
      rounds: ROUNDS,
      publishToDoneMedianMs: e2e,
      functionEngineMedianMs: median(rows.filter((r) => r.method!.toString().startsWith('kill')).map((r) => Number(r.functionMs))),
      engineInProcessMedianMs: direct,
      plainLoopMedianMs: plain,
      endToEndOverEngine: +(e2e / direct).toFixed(2),
      plainOverEndToEnd: +(plain / e2e).toFixed(2),
    };
    console.table([summary]);
    console.log(JSON.stringify(summary));
  } finally {
    fn?.stop();
    await pubsub.close();
    for (const e of emulators) await e.stop();
  }
}

async function engineRun(s: SessionStore, user: string, n: number): Promise<number> {
  await seedUser(s, user, n);
  const t0 = performance.now();
  const report = await batchDelete({
    store: s,
    selector: killSelector(user, Date.now()),
    batchSize: 500,
    parallelism: 4,
    deadline: Date.now() + 3600_000,
    clock: systemClock,
  });
  if (report.deleted !== n || !report.done) throw new Error(`engine deleted ${report.deleted} of ${n}`);
  return Math.round(performance.now() - t0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
