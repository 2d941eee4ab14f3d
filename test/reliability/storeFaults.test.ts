/**
 * The session API while its store fails under traffic, against a Firestore emulator (Datastore mode)
 * that this file starts, cuts off, pauses and restarts itself (the shared emulators of the global
 * setup are never touched). The API is the real module that registers the functions, served by
 * functions-framework's test server on a loopback port; the store is the production
 * DatastoreSessionStore with a short deadline. No Google client is replaced.
 *
 * Every answer must be a success, a refusal with the JSON error body, or 503 store_unavailable with
 * Retry-After: never a 500, never a hang (each request is bounded). What was acknowledged is stored;
 * a write that failed is stored entirely or not at all; the same store object recovers by itself.
 */
import { freePort, startEmulator, type Emulator } from '../../scripts/emulators';
import { digest } from '../../lib/core/ids';
import type { DatastoreSessionStore } from '../../lib/store/datastoreStore';
import { startApi, type ApiHarness } from '../support/api';
import { uniqueNamespace } from '../support/fixtures';
import { setLogSink } from '../../lib/setup/log';
import { afterNextCommit, type Answer, Client, cookieOf, listen, problems, Relay, sleep, storeAt, until } from './support';

const TIMEOUT_MS = 1000;
const WORKERS = 6;
/** Upper bound of one worker's iterations in one scenario: bounded even if a phase never ends. */
const MAX_ITERATIONS = 400;

let api: ApiHarness;
let client: Client;
let closeServer: () => Promise<void>;
let emulatorPort: number;
let emulator: Emulator | undefined;
const logLines: string[] = [];

beforeAll(async () => {
  emulatorPort = await freePort();
  emulator = await startEmulator('datastore', { port: emulatorPort });
  api = await startApi({ SESSION_STORE_TIMEOUT_MS: String(TIMEOUT_MS) });
  // The request log lines (one per request, hundreds here) are kept, not printed.
  setLogSink((line) => logLines.push(line));
  const l = await listen(api.server);
  client = new Client(l.url);
  closeServer = l.close;
}, 120_000);

afterAll(async () => {
  setLogSink(null);
  await closeServer?.();
  if (emulator) {
    // A paused group would not see SIGTERM: resume it first.
    try {
      process.kill(-emulator.pid, 'SIGCONT');
    } catch {
      // gone
    }
    await emulator.stop();
  }
}, 60_000);

interface TrackedSession {
  cookie: string;
  staticKey: string;
  /** Values of PATCHes answered 200. */
  acked: Array<Record<string, number>>;
  /** Values of PATCHes answered 503: stored entirely or not at all. */
  failed: Array<Record<string, number>>;
}

type Phase = 'before' | 'fault' | 'after' | 'done';

interface Traffic {
  phase: Phase;
  answers: Array<{ phase: Phase; what: string; answer: Answer }>;
  /** Network-level failures (a hang ends in an abort after the bound). */
  transportErrors: string[];
}

async function newTrackedSession(): Promise<TrackedSession> {
  // A cold emulator (or a fresh gRPC channel) can miss the 1 s deadline on its first calls: that is
  // a correct 503, retried here a bounded number of times before the scenario starts.
  let res: Answer | undefined;
  for (let i = 0; i < 20 && res?.status !== 200; i++) {
    if (res) await sleep(250);
    res = await client.call('GET', '/session/security-key');
    if (res.status !== 200 && res.status !== 503) break;
  }
  if (res?.status !== 200) throw new Error(`could not start a session: ${res?.status} ${res?.text}`);
  return { cookie: cookieOf(res), staticKey: res.headers.get('sec-x-viur-staticskey')!, acked: [], failed: [] };
}

/**
 * WORKERS clients, one session each, alternate a two-key PATCH (CSRF by the static key) and a GET.
 * `fault` runs once every worker has written; `restore` once the fault produced `faultAnswers`
 * 503s; the traffic ends once `recovered` says so (checked after every answer of the after phase).
 */
async function underTraffic(
  sessions: TrackedSession[],
  steps: {
    fault: () => Promise<void>;
    faultAnswers: number;
    whileFaulty?: () => Promise<void>;
    restore: () => Promise<void>;
    recovered: (t: Traffic) => boolean;
  },
): Promise<Traffic> {
  const t: Traffic = { phase: 'before', answers: [], transportErrors: [] };
  const record = (what: string, answer: Answer) => t.answers.push({ phase: t.phase, what, answer });
  const worker = async (w: number, s: TrackedSession) => {
    for (let n = 0; n < MAX_ITERATIONS && t.phase !== 'done'; n++) {
      const values = { [`w${w}n${n}a`]: n, [`w${w}n${n}b`]: n };
      try {
        const patch = await client.call('PATCH', '/session', {
          headers: { cookie: s.cookie, 'sec-x-viur-staticskey': s.staticKey },
          body: values,
        });
        record('PATCH /session', patch);
        if (patch.status === 200) s.acked.push(values);
        else if (patch.status === 503) s.failed.push(values);
        record('GET /session', await client.call('GET', '/session', { headers: { cookie: s.cookie } }));
      } catch (err) {
        t.transportErrors.push(`${t.phase}: ${String(err)}`);
      }
      // Failures are fast while the store refuses connections; do not spin.
      await sleep(t.phase === 'fault' ? 50 : 5);
    }
  };
  const controller = async () => {
    const count = (phase: Phase) => t.answers.filter((a) => a.phase === phase && a.answer.status >= 500).length;
    await until('every worker wrote before the fault', () => sessions.every((s) => s.acked.length >= 2), 60_000, 20);
    t.phase = 'fault';
    await steps.fault();
    // Counted as 5xx, not 503 only: a fault answered with 500 must fail the checks below, not stall here.
    await until(`${steps.faultAnswers} answers of 5xx during the fault`, () => count('fault') >= steps.faultAnswers, 90_000, 20);
    await steps.whileFaulty?.();
    t.phase = 'after';
    await steps.restore();
    await until('recovery', () => steps.recovered(t), 120_000, 50);
    t.phase = 'done';
  };
  try {
    await Promise.all([controller(), ...sessions.map((s, w) => worker(w, s))]);
  } finally {
    t.phase = 'done';
  }
  return t;
}

function summary(label: string, t: Traffic): void {
  const by: Record<string, Record<number, number>> = {};
  for (const a of t.answers) {
    const p = (by[a.phase] ??= {});
    p[a.answer.status] = (p[a.answer.status] ?? 0) + 1;
  }
  process.stdout.write(`${label}: statuses by phase ${JSON.stringify(by)}\n`);
}

function expectCleanAnswers(t: Traffic): void {
  expect(t.transportErrors).toEqual([]);
  expect(t.answers.flatMap((a) => problems(a.answer, `${a.phase} ${a.what}`))).toEqual([]);
  // The fault was real: it produced 503s, and nothing but successes, 503s and refusals.
  expect(t.answers.filter((a) => a.phase === 'fault' && a.answer.status === 503).length).toBeGreaterThan(0);
}

/** Stored data of every session equals what was acknowledged, plus failed writes each either whole or absent. */
async function expectAcknowledgedAndAtomic(sessions: TrackedSession[], store: DatastoreSessionStore): Promise<void> {
  for (const s of sessions) {
    const stored = await store.get(digest(s.cookie.split('=')[1]));
    expect(stored).not.toBeNull();
    const data = stored!.data;
    const expected: Record<string, number> = {};
    for (const v of s.acked) Object.assign(expected, v);
    for (const v of s.failed) {
      const present = Object.keys(v).filter((k) => Object.hasOwn(data, k));
      // A 503 can hide a commit that happened: all keys or none, never some.
      expect({ write: v, present: present.length }).toEqual({ write: v, present: present.length === 0 ? 0 : Object.keys(v).length });
      if (present.length > 0) Object.assign(expected, v);
    }
    expect(data).toEqual(expected);
  }
}

test('the connection to the store is cut under traffic: 503s with the JSON body, nothing half written, the same store recovers when it is back', async () => {
  const relay = new Relay(await freePort(), { host: '127.0.0.1', port: emulatorPort });
  await relay.open();
  const { store } = storeAt(relay.port, TIMEOUT_MS, uniqueNamespace('cut'));
  api.use({ SESSION_STORE_TIMEOUT_MS: String(TIMEOUT_MS) }, store);
  try {
    const sessions = await Promise.all(Array.from({ length: WORKERS }, () => newTrackedSession()));
    let okAfter = 0;
    const t = await underTraffic(sessions, {
      // Cut right after a commit succeeded: a request that needed a second commit would be caught
      // half-way (the other workers are cut wherever they are).
      fault: () =>
        new Promise<void>((resolve) => {
          const restore = afterNextCommit(() => {
            restore();
            void relay.close().then(resolve);
          });
        }),
      faultAnswers: 3 * WORKERS,
      restore: () => relay.open(),
      recovered: (tr) => {
        okAfter = tr.answers.filter((a) => a.phase === 'after' && a.what === 'PATCH /session' && a.answer.status === 200).length;
        return okAfter >= 2 * WORKERS;
      },
    });
    summary('connection cut', t);
    expectCleanAnswers(t);
    // Recovered without a restart: the same store object keeps serving writes.
    expect(okAfter).toBeGreaterThanOrEqual(2 * WORKERS);
    await expectAcknowledgedAndAtomic(sessions, store);
  } finally {
    await relay.close();
  }
}, 240_000);

test('a slow store (the emulator paused with SIGSTOP): deadlines fire, requests fail cleanly with 503, the process stays healthy, SIGCONT brings it back', async () => {
  const { store } = storeAt(emulatorPort, TIMEOUT_MS, uniqueNamespace('slow'));
  api.use({ SESSION_STORE_TIMEOUT_MS: String(TIMEOUT_MS) }, store);
  const pid = emulator!.pid;
  const health: Answer[] = [];
  try {
    const sessions = await Promise.all(Array.from({ length: WORKERS }, () => newTrackedSession()));
    const t = await underTraffic(sessions, {
      fault: async () => void process.kill(-pid, 'SIGSTOP'),
      faultAnswers: 2 * WORKERS,
      whileFaulty: async () => {
        // The process is healthy while its store hangs: liveness and store-free requests answer.
        health.push(await client.call('GET', '/healthz'));
        health.push(await client.call('GET', '/session'));
      },
      restore: async () => void process.kill(-pid, 'SIGCONT'),
      recovered: (tr) =>
        tr.answers.filter((a) => a.phase === 'after' && a.what === 'PATCH /session' && a.answer.status === 200).length >= 2 * WORKERS,
    });
    summary('emulator paused', t);
    expectCleanAnswers(t);
    expect(health.map((h) => [h.status, h.body])).toEqual([
      [200, { status: 'ok' }],
      [200, { user: null, data: {} }],
    ]);
    await expectAcknowledgedAndAtomic(sessions, store);
  } finally {
    try {
      process.kill(-pid, 'SIGCONT');
    } catch {
      // gone
    }
  }
}, 240_000);

test('the emulator goes away under traffic and is started again on the same port: 503s meanwhile, no partial entity, the same store object serves new sessions', async () => {
  const namespace = uniqueNamespace('restart');
  const { store, datastore } = storeAt(emulatorPort, TIMEOUT_MS, namespace);
  api.use({ SESSION_STORE_TIMEOUT_MS: String(TIMEOUT_MS) }, store);
  {
    const sessions = await Promise.all(Array.from({ length: WORKERS }, () => newTrackedSession()));
    const t = await underTraffic(sessions, {
      fault: async () => {
        await emulator!.stop();
        emulator = undefined;
      },
      faultAnswers: 3 * WORKERS,
      restore: async () => {
        emulator = await startEmulator('datastore', { port: emulatorPort });
      },
      // The emulator lost its data: the old cookies name nothing now; a read answering 200 shows the store serves again.
      recovered: (tr) => tr.answers.some((a) => a.phase === 'after' && a.what === 'GET /session' && a.answer.status === 200),
    });
    summary('emulator restarted', t);
    expectCleanAnswers(t);
    // A session written after the recovery works end to end, on the same store object.
    const fresh = await newTrackedSession();
    const put = await client.call('PUT', '/session/data/after', {
      headers: { cookie: fresh.cookie, 'sec-x-viur-staticskey': fresh.staticKey },
      body: 'ok',
    });
    expect([put.status, put.body]).toEqual([200, { key: 'after', value: 'ok' }]);
    expect((await client.call('GET', '/session', { headers: { cookie: fresh.cookie } })).body).toEqual({
      user: null,
      data: { after: 'ok' },
    });
    // What the restarted emulator holds: only whole entities of sessions created after the recovery.
    const [entities] = await datastore.runQuery(datastore.createQuery(namespace, 'viur-session'));
    const names = entities.map((e) => (e[datastore.KEY] as { name: string }).name);
    expect(names).toContain(digest(fresh.cookie.split('=')[1]));
    for (const e of entities) {
      expect(Object.keys(e).sort()).toEqual([
        'createdAt',
        'data',
        'expiresAt',
        'expiry',
        'handle',
        'lastseen',
        'securityKeys',
        'staticSecurityKey',
        'user',
        'userAgent',
      ]);
    }
    // No session of before the outage came back half-made.
    for (const s of sessions) expect(names).not.toContain(digest(s.cookie.split('=')[1]));
  }
}, 240_000);
