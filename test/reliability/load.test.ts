/**
 * Bounded load on the whole stack, loopback only: sessionApi and killSessionByUser as compiled
 * functions under the real functions-framework (child processes), the shared Firestore emulator in
 * Datastore mode, kills through a Pub/Sub emulator push subscription.
 *
 * CLIENTS clients run ROUNDS rounds of OPS operations each (a fixed count, not a wall time): reads,
 * writes of distinct keys on shared sessions, security-key fetches and validations (also of keys
 * other clients of the same session hold, so keys are raced), logins and kills. The invariants are
 * checked at the end: no acknowledged write lost, no one-time key accepted twice, no session killed
 * while it was bound to the user usable after the kill finished (and sessions opened after a kill
 * alive), no 5xx at all (nothing deliberately fails here), and the API process's memory stable.
 *
 * Memory: the API child runs with `--expose-gc --require memoryProbe.js`; on SIGUSR2 the probe runs a
 * full GC and logs heapUsed, external (Buffers) and RSS. The first round is warm-up (JIT, client
 * pools, caches); heapUsed + external after GC at the end must lie within HEAP_GROWTH_BOUND of the
 * same after warm-up (about 1,000 requests later: a leak of 8 KiB per request fails it).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PubSub } from '@google-cloud/pubsub';
import { freePort } from '../../scripts/emulators';
import { createLocalAdmin } from '../../scripts/localAdmin';
import { uniqueNamespace } from '../support/fixtures';
import { ensureBuilt, type FunctionProcess, startFunction } from '../support/functionsFramework';
import { pubsub, pushTopic, uniqueName } from '../support/pubsub';
import { type Answer, Client, cookieOf, problems, until } from './support';

const CLIENTS = 30;
const SHARED_DATA_SESSIONS = 6;
const DATA_CLIENTS = 18;
const LOGIN_CLIENTS = 8;
const USERS = 4;
const ROUNDS = 3;
const OPS = 16;
/** Bound on the growth of heap + external memory after GC between the end of warm-up and the end of the run. */
const HEAP_GROWTH_BOUND = 8 * 1024 * 1024;
const ADMIN_EMAIL = 'load-admin@session-test.iam.gserviceaccount.com';
const AUDIENCE = 'https://session-api.test';

let client: PubSub;
const processes: FunctionProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  client = pubsub();
}, 180_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await client?.close();
}, 60_000);

interface DataSession {
  cookie: string;
  staticKey: string;
  /** key → value of every PUT answered 200. */
  acked: Map<string, number>;
  /** One-time keys handed out for this session, for any of its clients to use. */
  pool: string[];
}

interface Login {
  user: string;
  cookie: string;
  staticKey: string;
  sentAt: number;
  doneAt: number;
}

interface Kill {
  user: string;
  sentAt: number;
  doneAt: number;
  messageId: string;
}

test(`${CLIENTS} clients × ${ROUNDS} rounds × ${OPS} operations: nothing lost, no key accepted twice, killed sessions dead, no 5xx, memory stable`, async () => {
  const admin = createLocalAdmin(mkdtempSync(join(tmpdir(), 'load-admin-')), ADMIN_EMAIL);
  const namespace = uniqueNamespace('load');
  const topicName = uniqueName('load-kill');
  const common = { SESSION_NAMESPACE: namespace, SESSION_KILL_TOPIC: topicName };
  const killPort = await freePort();
  const [apiFn, killFn] = await Promise.all([
    startFunction('sessionApi', 'http', {
      ...common,
      SESSION_ADMIN_JWKS_FILE: admin.jwksFile,
      SESSION_ADMIN_PRINCIPALS: ADMIN_EMAIL,
      SESSION_ADMIN_AUDIENCE: AUDIENCE,
      NODE_OPTIONS: `--expose-gc --require ${join(__dirname, 'memoryProbe.js')}`,
    }),
    startFunction('killSessionByUser', 'cloudevent', common, killPort),
  ]);
  processes.push(apiFn, killFn);
  await pushTopic(client, topicName, killPort);
  const api = new Client(apiFn.url);
  const token = admin.mint(AUDIENCE);

  const answers: Array<{ what: string; answer: Answer }> = [];
  const call = async (what: string, method: string, path: string, options: Parameters<Client['call']>[2] = {}) => {
    const answer = await api.call(method, path, options);
    answers.push({ what, answer });
    return answer;
  };

  const start = async (): Promise<{ cookie: string; staticKey: string; key: string }> => {
    const res = await call('GET /session/security-key', 'GET', '/session/security-key');
    if (res.status !== 200) throw new Error(`${res.status} ${res.text}`);
    return {
      cookie: cookieOf(res),
      staticKey: res.headers.get('sec-x-viur-staticskey')!,
      key: (res.body as { securityKey: string }).securityKey,
    };
  };

  const shared: DataSession[] = [];
  for (let i = 0; i < SHARED_DATA_SESSIONS; i++) {
    const s = await start();
    shared.push({ cookie: s.cookie, staticKey: s.staticKey, acked: new Map(), pool: [s.key] });
  }
  /** How often each one-time key was accepted (validate answered valid, or a write took it). */
  const accepted = new Map<string, number>();
  const accept = (key: string) => accepted.set(key, (accepted.get(key) ?? 0) + 1);
  let raced = 0;
  const readYourWrites: string[] = [];
  const logins: Login[] = [];
  const kills: Kill[] = [];

  const dataClient = async (c: number, round: number) => {
    const s = shared[c % SHARED_DATA_SESSIONS];
    const mine = new Map<string, number>();
    for (let n = 0; n < OPS; n++) {
      const pick = () => s.pool[(c * 7 + n * 13 + round) % s.pool.length];
      switch (n % 5) {
        case 0: {
          const key = `c${c}-r${round}-n${n}`;
          const res = await call('PUT static', 'PUT', `/session/data/${key}`, {
            headers: { cookie: s.cookie, 'sec-x-viur-staticskey': s.staticKey },
            body: n,
          });
          if (res.status === 200) {
            s.acked.set(key, n);
            mine.set(key, n);
          }
          break;
        }
        case 1: {
          const sentWith = new Map(mine);
          const res = await call('GET /session', 'GET', '/session', { headers: { cookie: s.cookie } });
          const data = (res.body as { data?: Record<string, unknown> } | undefined)?.data ?? {};
          for (const [k, v] of sentWith) if (data[k] !== v) readYourWrites.push(`${k} missing in a read after its write was acknowledged`);
          break;
        }
        case 2: {
          const res = await call('GET /session/security-key', 'GET', '/session/security-key', { headers: { cookie: s.cookie } });
          if (res.status === 200) s.pool.push((res.body as { securityKey: string }).securityKey);
          break;
        }
        case 3: {
          const key = pick();
          if ((accepted.get(key) ?? 0) > 0) raced++;
          const res = await call('POST validate', 'POST', '/session/security-key/validate', {
            headers: { cookie: s.cookie },
            body: { key },
          });
          if (res.status === 200 && (res.body as { valid: boolean }).valid) {
            accept(key);
            s.pool.push(res.headers.get('x-security-key')!);
          }
          break;
        }
        case 4: {
          const key = pick();
          const name = `c${c}-r${round}-n${n}`;
          if ((accepted.get(key) ?? 0) > 0) raced++;
          const res = await call('PUT one-time', 'PUT', `/session/data/${name}`, {
            headers: { cookie: s.cookie, 'x-security-key': key },
            body: n,
          });
          if (res.status === 200) {
            accept(key);
            s.acked.set(name, n);
            mine.set(name, n);
            s.pool.push(res.headers.get('x-security-key')!);
          }
          break;
        }
      }
    }
  };

  const loginClient = async (c: number, round: number) => {
    const user = `user-${c % USERS}`;
    let current: Login | undefined;
    for (let n = 0; n < OPS; n++) {
      if (n % 4 === 0) {
        const s = await start();
        const sentAt = Date.now();
        const res = await call('POST /session/login', 'POST', '/session/login', {
          headers: { cookie: s.cookie, authorization: `Bearer ${token}` },
          body: { user },
        });
        if (res.status !== 200) continue;
        current = { user, cookie: cookieOf(res), staticKey: res.headers.get('sec-x-viur-staticskey')!, sentAt, doneAt: Date.now() };
        logins.push(current);
      } else if (current && n % 2 === 1) {
        await call('GET /session', 'GET', '/session', { headers: { cookie: current.cookie } });
      } else if (current) {
        await call('PUT static', 'PUT', `/session/data/r${round}n${n}`, {
          headers: { cookie: current.cookie, 'sec-x-viur-staticskey': current.staticKey },
          body: n,
        });
      }
    }
  };

  const killClient = async (c: number, round: number) => {
    const own = await start();
    let key = own.key;
    for (let n = 0; n < OPS; n++) {
      if (n === OPS / 2) {
        const user = `user-${(c + round) % USERS}`;
        const sentAt = Date.now();
        const res = await call('POST /sessions/kill', 'POST', '/sessions/kill', {
          headers: { authorization: `Bearer ${token}` },
          body: { user },
        });
        if (res.status === 202) kills.push({ user, sentAt, doneAt: Date.now(), messageId: (res.body as { messageId: string }).messageId });
      } else {
        const res = await call('POST validate', 'POST', '/session/security-key/validate', {
          headers: { cookie: own.cookie },
          body: { key },
        });
        if (res.status === 200 && (res.body as { valid: boolean }).valid) {
          accept(key);
          key = res.headers.get('x-security-key')!;
        }
      }
    }
  };

  const probes: Array<{ heapUsed: number; external: number; rss: number; gc: boolean }> = [];
  const probe = async () => {
    const before = apiFn.logs().filter((l) => l.message === 'memory probe').length;
    process.kill(apiFn.pid, 'SIGUSR2');
    await until('a memory probe line', () => apiFn.logs().filter((l) => l.message === 'memory probe').length > before, 10_000, 20);
    const line = apiFn
      .logs()
      .filter((l) => l.message === 'memory probe')
      .at(-1)!;
    probes.push({ heapUsed: Number(line.heapUsed), external: Number(line.external), rss: Number(line.rss), gc: line.gc === true });
  };

  const t0 = Date.now();
  for (let round = 0; round < ROUNDS; round++) {
    await Promise.all(
      Array.from({ length: CLIENTS }, (_, c) =>
        c < DATA_CLIENTS ? dataClient(c, round) : c < DATA_CLIENTS + LOGIN_CLIENTS ? loginClient(c, round) : killClient(c, round),
      ),
    );
    if (round === 0 || round === ROUNDS - 1) await probe();
  }

  const loadMs = Date.now() - t0;
  // Every invariant is evaluated and reported together, so one broken property does not hide another.
  const violations = {
    /** No 5xx at all (nothing fails deliberately here), and every refusal is a JSON error body. */
    badAnswers: answers.flatMap((a) => problems(a.answer, a.what)),
    serverErrors: answers.filter((a) => a.answer.status >= 500).map((a) => `${a.what}: ${a.answer.status}`),
    unexpectedStatuses: answers
      .filter(
        (a) =>
          ![200, 202, 204, 403].includes(a.answer.status) ||
          (a.answer.status === 403 && (a.answer.body as { error?: { code?: string } })?.error?.code !== 'csrf'),
      )
      .map((a) => `${a.what}: ${a.answer.status} ${a.answer.text.slice(0, 100)}`),
    /** No one-time key accepted twice, although keys were raced. */
    keysAcceptedTwice: [...accepted.entries()].filter(([, n]) => n > 1).map(([k, n]) => `${k.slice(0, 6)}… accepted ${n} times`),
    /** No update of distinct keys lost: reads saw earlier acknowledged writes; the end state is exactly what was acknowledged. */
    readYourWrites,
    lostOrExtraWrites: [] as string[],
    /** Every session logged in before a kill of its user was requested is dead once the kill finished; one logged in after it is alive. */
    killedButUsable: [] as string[],
    sparedButDead: [] as string[],
    killsUnfinished: [] as string[],
  };
  for (const [i, s] of shared.entries()) {
    const res = await api.call('GET', '/session', { headers: { cookie: s.cookie } });
    const data = (res.body as { data?: Record<string, unknown> } | undefined)?.data ?? {};
    const want = Object.fromEntries(s.acked);
    for (const k of Object.keys(want))
      if (data[k] !== want[k]) violations.lostOrExtraWrites.push(`session ${i}: acknowledged ${k} missing`);
    for (const k of Object.keys(data))
      if (!(k in want)) violations.lostOrExtraWrites.push(`session ${i}: ${k} stored but never acknowledged`);
  }
  const t1 = Date.now();
  try {
    await until(
      `all ${kills.length} kills finished`,
      () => kills.every((k) => killFn.logs().some((l) => l.message === 'kill finished' && l.messageId === k.messageId)),
      120_000,
      200,
    );
  } catch {
    violations.killsUnfinished = kills
      .filter((k) => !killFn.logs().some((l) => l.message === 'kill finished' && l.messageId === k.messageId))
      .map((k) => `${k.user} (${k.messageId})`);
  }
  const killWaitMs = Date.now() - t1;
  let dead = 0;
  let alive = 0;
  const checkLogin = async (l: Login) => {
    const mine = kills.filter((k) => k.user === l.user);
    const killed = mine.some((k) => l.doneAt < k.sentAt);
    const spared = mine.every((k) => l.sentAt > k.doneAt);
    if (!killed && !spared) return; // login and kill overlapped: either outcome is correct
    const read = await api.call('GET', '/session', { headers: { cookie: l.cookie } });
    const write = await api.call('PUT', '/session/data/after-kill', {
      headers: { cookie: l.cookie, 'sec-x-viur-staticskey': l.staticKey },
      body: 1,
    });
    const user = (read.body as { user?: unknown } | undefined)?.user;
    if (killed) {
      dead++;
      if (user !== null || write.status !== 403)
        violations.killedButUsable.push(`${l.user} logged in at ${l.doneAt}: read user ${String(user)}, write ${write.status}`);
    } else {
      alive++;
      if (user !== l.user || write.status !== 200)
        violations.sparedButDead.push(`${l.user} logged in at ${l.sentAt}: read user ${String(user)}, write ${write.status}`);
    }
  };
  for (let i = 0; i < logins.length; i += CLIENTS) await Promise.all(logins.slice(i, i + CLIENTS).map(checkLogin));
  process.stdout.write(
    `load: ${answers.length} requests in ${loadMs} ms (kills finished ${killWaitMs} ms later), ${accepted.size} keys accepted (${raced} attempts on keys already accepted), ${logins.length} logins (${dead} killed, ${alive} spared), ${kills.length} kills; ` +
      `heap after GC ${probes.map((p) => (p.heapUsed / 2 ** 20).toFixed(1)).join(' → ')} MiB, external ${probes.map((p) => (p.external / 2 ** 20).toFixed(1)).join(' → ')} MiB, RSS ${probes.map((p) => (p.rss / 2 ** 20).toFixed(1)).join(' → ')} MiB\n`,
  );
  expect(violations).toEqual({
    badAnswers: [],
    serverErrors: [],
    unexpectedStatuses: [],
    keysAcceptedTwice: [],
    readYourWrites: [],
    lostOrExtraWrites: [],
    killedButUsable: [],
    sparedButDead: [],
    killsUnfinished: [],
  });
  // The load exercised what it claims to: keys raced, kills that caught sessions, the planned kills.
  expect({ accepted: accepted.size > 50, raced: raced > 0, dead: dead > 0, kills: kills.length }).toEqual({
    accepted: true,
    raced: true,
    dead: true,
    kills: (CLIENTS - DATA_CLIENTS - LOGIN_CLIENTS) * ROUNDS,
  });

  // Memory: what a full GC leaves (the JS heap plus external memory such as Buffers) did not grow
  // beyond the bound after warm-up. RSS is printed, not asserted: allocator and JIT noise.
  expect(probes.every((p) => p.gc)).toBe(true);
  const live = (p: (typeof probes)[number]) => p.heapUsed + p.external;
  expect(live(probes[1]) - live(probes[0])).toBeLessThan(HEAP_GROWTH_BOUND);
}, 300_000);
