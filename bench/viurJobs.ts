/**
 * Benchmark (not a test): cleanup and kill in `viur` format next to a faithful re-creation of
 * ViUR 3.8.35's own iterators (`start_clear_sessions` / `killSessionByUser` → DeleteSessionsIter,
 * tasks.py QueryIter._qryStep): one query of 5 full entities per step, continuing from the previous
 * step's cursor, each entity deleted with its own `db.delete` commit, steps one after the other.
 * Both run on identical data (two namespaces seeded alike) on the same Firestore emulator
 * (Datastore mode), in one run, alternating which goes first. ViUR's steps run back to back here;
 * deployed, each is a Cloud Task with its own dispatch and request overhead, so ViUR's figure is a
 * lower bound. Records the peak RSS of each run.
 *
 *   npx tsc -p bench/tsconfig.json && node dist-bench/bench/viurJobs.js [--sessions N] [--kill N] [--rounds R]
 *
 * Starts its own emulator unless DATASTORE_EMULATOR_HOST is set.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Datastore, PropertyFilter } from '@google-cloud/datastore';
import { type Emulator, startEmulator } from '../scripts/emulators';
import { batchDelete } from '../lib/jobs/batchDelete';
import { systemClock } from '../lib/core/clock';
import { ViurJobStore, type ViurSessionSelector } from '../lib/viur/jobStore';
import { legacyUrlsafeKey } from '../lib/viur/userKey';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '20000' },
    kill: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '1' },
    parallelism: { type: 'string', default: '4' },
  },
});
const N = Number(values.sessions);
const KILL_N = Number(values.kill);
const ROUNDS = Number(values.rounds);
const PARALLELISM = Number(values.parallelism);
const LIFETIME = 3600;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const cookie = () => Array.from(randomBytes(42), (b) => ALPHABET[b % ALPHABET.length]).join('');

/** ViUR-shaped sessions (data excluded from indexes, lastseen a double, user a string), in commits of 500, four at a time. */
async function seed(ds: Datastore, namespace: string, rows: Array<{ lastseen: number; user: string }>): Promise<void> {
  const entities = rows.map((r) => ({
    key: ds.key({ namespace, path: ['viur-session', cookie()] }),
    excludeFromIndexes: ['data'],
    data: { data: { language: 'de', count: 1 }, static_security_key: cookie().slice(0, 13), lastseen: ds.double(r.lastseen), user: r.user },
  }));
  const chunks: (typeof entities)[] = [];
  for (let i = 0; i < entities.length; i += 500) chunks.push(entities.slice(i, i + 500));
  for (let i = 0; i < chunks.length; i += 4) await Promise.all(chunks.slice(i, i + 4).map((c) => ds.upsert(c)));
}

/**
 * ViUR's QueryIter on `filter`: per step one RunQuery of 5 full entities from the cursor, then one
 * delete commit per entity (DeleteSessionsIter.handleEntry → db.delete(entry.key)), then the next
 * step from the query's end cursor until no more results.
 */
async function viurIterator(ds: Datastore, namespace: string, filter: PropertyFilter<string>): Promise<{ deleted: number; steps: number }> {
  let cursor: string | undefined;
  let deleted = 0;
  let steps = 0;
  for (;;) {
    let query = ds.createQuery(namespace, 'viur-session').filter(filter).limit(5);
    if (cursor) query = query.start(cursor);
    const [entities, info] = await ds.runQuery(query);
    steps++;
    for (const e of entities as Array<Record<symbol, unknown>>) {
      await ds.delete(e[ds.KEY]);
      deleted++;
    }
    if (entities.length < 5 || info.moreResults === 'NO_MORE_RESULTS' || !info.endCursor) return { deleted, steps };
    cursor = info.endCursor;
  }
}

async function ours(ds: Datastore, namespace: string, selector: ViurSessionSelector, withKeys: boolean): Promise<{ deleted: number }> {
  const jobs = new ViurJobStore({ datastore: ds, kind: 'viur-session', namespace });
  return batchDelete({
    store: jobs.sessions({ withSecurityKeys: withKeys }),
    selector,
    batchSize: 500,
    parallelism: PARALLELISM,
    deadline: Date.now() + 3_600_000,
    clock: systemClock,
  });
}

/** Runs `fn` and samples RSS every 50 ms. */
async function measured<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number; peakRssMb: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const started = performance.now();
  try {
    const result = await fn();
    return { result, ms: performance.now() - started, peakRssMb: Math.round(Math.max(peak, process.memoryUsage().rss) / 1048576) };
  } finally {
    clearInterval(timer);
  }
}

async function main(): Promise<void> {
  let emulator: Emulator | undefined;
  if (!process.env.DATASTORE_EMULATOR_HOST) {
    emulator = await startEmulator('datastore');
    process.env.DATASTORE_EMULATOR_HOST = emulator.host;
  }
  const project = 'viur-bench';
  const ds = new Datastore({ projectId: project });
  const results: Array<Record<string, unknown>> = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const now = Date.now() / 1000;
      // Cleanup: N expired (beyond lifetime + 300 s) next to 1,000 live sessions.
      const cleanupRows = [
        ...Array.from({ length: N }, (_, i) => ({ lastseen: now - LIFETIME - 400 - i, user: '__guest__' })),
        ...Array.from({ length: 1000 }, () => ({ lastseen: now, user: '__guest__' })),
      ];
      // Kill: KILL_N sessions of one user next to 1,000 of others.
      const alice = legacyUrlsafeKey({ projectId: project }, [{ kind: 'user', name: 'alice' }]);
      const killRows = [
        ...Array.from({ length: KILL_N }, () => ({ lastseen: now, user: alice })),
        ...Array.from({ length: 1000 }, (_, i) => ({ lastseen: now, user: `other-${i}` })),
      ];
      const lastseenBefore = now - (LIFETIME + 300);
      const order = round % 2 === 0 ? ['ours', 'viur'] : ['viur', 'ours'];
      for (const [job, rows, selector, filter] of [
        ['cleanup', cleanupRows, { kind: 'stale', lastseenBefore }, new PropertyFilter('lastseen', '<', ds.double(lastseenBefore))],
        ['kill', killRows, { kind: 'user', user: alice }, new PropertyFilter('user', '=', alice)],
      ] as const) {
        const spaces = { ours: `ours-${randomBytes(4).toString('hex')}`, viur: `viur-${randomBytes(4).toString('hex')}` };
        await seed(ds, spaces.ours, rows);
        await seed(ds, spaces.viur, rows);
        for (const method of order) {
          const load = loadavg()[0]!.toFixed(2);
          const run =
            method === 'ours'
              ? await measured(() => ours(ds, spaces.ours, selector, job === 'kill'))
              : await measured(() => viurIterator(ds, spaces.viur, filter));
          const line = {
            round,
            job,
            method,
            deleted: run.result.deleted,
            seconds: +(run.ms / 1000).toFixed(2),
            peakRssMb: run.peakRssMb,
            load,
          };
          results.push(line);
          console.log(JSON.stringify(line));
        }
      }
    }
    for (const job of ['cleanup', 'kill']) {
      const time = (m: string) => results.filter((r) => r.job === job && r.method === m).reduce((s, r) => s + Number(r.seconds), 0);
      console.log(
        `${job}: ours ${time('ours').toFixed(2)} s, ViUR's iterator ${time('viur').toFixed(2)} s, speed-up ×${(time('viur') / time('ours')).toFixed(1)}`,
      );
    }
  } finally {
    await emulator?.stop();
  }
}

// Exits explicitly: the Datastore client's channels would keep the process alive.
void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
