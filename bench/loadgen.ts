/**
 * Load generator of the request-path benchmark, run as its own process (so its CPU is not the
 * server's). Each virtual client holds its own session (its own cookie) on its own keep-alive
 * connection and sends one request at a time; `clients` is thus the concurrency. autocannon was
 * the first choice, but its per-connection context is reset after every pass over the request list,
 * so it cannot keep one cookie per connection; this is the few lines it takes instead.
 *
 * Two modes. Closed loop (the default): every client sends its next request when its previous one
 * is answered, so the server is driven to saturation and latency follows CPU per request. Open loop
 * (`rate`): requests arrive at a fixed rate whatever the server does, each on an idle client (its
 * session, its connection), and each one's latency is measured from its SCHEDULED send time, so a
 * stall delays every request due meanwhile, as it would users' (no coordinated omission).
 *
 * Input: one JSON argument (LoadSpec). Output: one JSON line (LoadResult).
 */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { loadavg } from 'node:os';
import type { GcStats } from './rpcPreload';
import { percentile, round } from './stats';

export interface LoadSpec {
  url: string;
  stack: 'ours' | 'express' | 'ff-express';
  /** Name in the result, when it differs from `stack` (an alternative build of ours). */
  label?: string;
  /** Name of the session cookie the server sets. */
  cookieName: string;
  clients: number;
  /** Requests measured (all clients together). */
  requests: number;
  /** Requests sent before measuring (JIT, connection pools, gRPC channel). */
  warmup: number;
  /** Share of writes, 0..1; the rest reads the whole session. */
  writeRatio: number;
  /** Requests of each kind sent one at a time after the run, to count round trips per read and per write. */
  probe: number;
  /** Hard limit on the whole run. */
  timeoutMs: number;
  /** Process group of the Datastore emulator, to count its CPU time per request (Linux /proc). */
  emulatorPgid?: number;
  /** The size curve: each session also holds this many more keys of about this many bytes in all (one PATCH at setup). */
  fill?: { keys: number; bytes: number };
  /** Production-latency mode: the relay's control URL and this server's relay, to count RPCs at the wire. */
  relay?: { countUrl: string; name: string };
  /**
   * Open loop: requests per second, sent on schedule (warm-up and measured requests alike) whatever
   * the answers; `clients` is then the number of sessions (and connections) they are spread over.
   */
  rate?: number;
}

export type RpcCounts = Record<string, number>;

export interface LoadResult {
  stack: string;
  clients: number;
  requests: number;
  writes: number;
  errors: number;
  firstError?: string;
  elapsedMs: number;
  throughput: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Percentiles of reads and of writes on their own. */
  read: { p50: number; p99: number };
  write: { p50: number; p99: number };
  rpcs: RpcCounts;
  rpcPerRequest: number;
  rpcPerRead: RpcCounts & { total: number };
  rpcPerWrite: RpcCounts & { total: number };
  /** Production-latency mode: RPCs counted at the relay (HTTP/2 streams), per measured request and per probed read / write. */
  wire?: { perRequest: number; perRead: number; perWrite: number };
  serverRssMb: number;
  /** The server's `process.version` (the Node it runs on, --server-node). */
  serverNode: string;
  /** The server's GC pauses over the measured requests (perf_hooks `gc` entries). */
  gc: {
    pausesPer1000: number;
    msPer1000: number;
    majorPer1000: number;
    /** Pauses of 2 ms or more per 1,000 requests. */
    over2msPer1000: number;
    maxMs: number;
  };
  /** The machine's 1-minute load average when the measured requests started and ended. */
  load: [number, number];
  /** Open loop: the rate asked for and how well the generator kept to its schedule. */
  open?: {
    rate: number;
    /** Measured requests ÷ the time from the first scheduled send to the last answer. */
    achievedRate: number;
    /** Sends that left 1 ms or more after their scheduled time (the generator itself was late), and the latest. */
    lateSends: number;
    maxLateMs: number;
    /** Requests that found no idle client (session) and waited behind another request of theirs. */
    queuedOnClient: number;
  };
  /** CPU time of the server process per measured request (user + system). */
  serverCpuMsPerRequest: number;
  /** CPU time of the emulator (its whole process group) per measured request; NaN where /proc is missing. */
  emulatorCpuMsPerRequest: number;
}

interface Client {
  agent: http.Agent;
  cookie: string;
  staticKey: string | undefined;
  counter: number;
  /** Requests of this client in flight (open loop: 0 = idle). */
  busy: number;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(
  base: URL,
  agent: http.Agent | undefined,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        agent,
        headers:
          body === undefined
            ? headers
            : { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(body);
  });
}

export function cookieOf(reply: Reply, name: string): string | undefined {
  for (const c of reply.headers['set-cookie'] ?? []) {
    const pair = c.split(';')[0]!;
    if (pair.startsWith(`${name}=`)) return pair;
  }
  return undefined;
}

/** The same data in both stacks: a small profile object and a counter the writes bump. */
const PROFILE = { name: 'Bench User', language: 'de', theme: 'dark', cart: [101, 202, 303], flags: { beta: true, newsletter: false } };

function headersFor(spec: LoadSpec, c: Client, write: boolean): Record<string, string> {
  const h: Record<string, string> = { cookie: c.cookie };
  // Our API wants a CSRF key on every change; the static key costs what one cookie check costs a
  // typical app (no extra round trip), so it is the like-for-like choice.
  if (write && spec.stack === 'ours') h['sec-x-viur-staticskey'] = c.staticKey!;
  return h;
}

async function setup(spec: LoadSpec, base: URL, i: number): Promise<Client> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let cookie: string | undefined;
  let staticKey: string | undefined;
  if (spec.stack === 'ours') {
    // A security key makes the session worth storing: the response carries the cookie and, once, the static key.
    const r = await request(base, agent, 'GET', '/session/security-key', {});
    cookie = cookieOf(r, spec.cookieName);
    staticKey = r.headers['sec-x-viur-staticskey'] as string | undefined;
    if (r.status !== 200 || !cookie || !staticKey) throw new Error(`setup of client ${i}: ${r.status} ${r.body}`);
  }
  const c: Client = { agent, cookie: cookie ?? '', staticKey, counter: 0, busy: 0 };
  const first = await request(base, agent, 'PUT', '/session/data/profile', headersFor(spec, c, true), JSON.stringify(PROFILE));
  if (spec.stack !== 'ours') c.cookie = cookieOf(first, spec.cookieName) ?? '';
  if (first.status !== 200 || !c.cookie) throw new Error(`setup of client ${i}: ${first.status} ${first.body}`);
  const second = await request(base, agent, 'PUT', '/session/data/counter', headersFor(spec, c, true), '{"n":0}');
  if (second.status !== 200) throw new Error(`setup of client ${i}: ${second.status} ${second.body}`);
  if (spec.fill) {
    const r = await request(
      base,
      agent,
      'PATCH',
      '/session',
      headersFor(spec, c, true),
      JSON.stringify(fillData(spec.fill.keys, spec.fill.bytes)),
    );
    if (r.status !== 200) throw new Error(`fill of client ${i}: ${r.status} ${r.body.slice(0, 300)}`);
  }
  return c;
}

/** `keys` string values of equal length, about `bytes` in all as JSON. */
function fillData(keys: number, bytes: number): Record<string, string> {
  const each = Math.max(1, Math.floor(bytes / keys) - 12);
  const out: Record<string, string> = {};
  for (let k = 0; k < keys; k++) out[`k${k}`] = String(k % 10).repeat(each);
  return out;
}

function send(spec: LoadSpec, base: URL, c: Client, write: boolean): Promise<Reply> {
  if (write) {
    c.counter++;
    // An object, not a bare number: functions-framework's JSON parser (in front of the Express app
    // of the ff-express stack) is strict.
    return request(base, c.agent, 'PUT', '/session/data/counter', headersFor(spec, c, true), `{"n":${c.counter}}`);
  }
  return request(base, c.agent, 'GET', '/session', headersFor(spec, c, false));
}

/** Deterministic spread of writes over the sequence: request n is a write when its slot says so. */
function isWrite(n: number, ratio: number): boolean {
  return (n * 7919) % 1000 < ratio * 1000;
}

async function rpcs(base: URL): Promise<{ counts: RpcCounts; rss: number; cpuMs: number; node: string; gc: GcStats }> {
  const r = await request(base, undefined, 'GET', '/__rpc', {});
  if (r.status !== 200) throw new Error(`/__rpc answered ${r.status}: is the server running with the preload?`);
  const parsed = JSON.parse(r.body) as { counts: RpcCounts; memory: number; cpuMs: number; node: string; gc: GcStats };
  return { counts: parsed.counts, rss: parsed.memory, cpuMs: parsed.cpuMs, node: parsed.node, gc: parsed.gc };
}

/** RPCs this server sent through its relay so far (production-latency mode), else 0. */
async function wireRpcs(spec: LoadSpec): Promise<number> {
  if (!spec.relay) return 0;
  const u = new URL(spec.relay.countUrl);
  const r = await request(u, undefined, 'GET', u.pathname, {});
  return (JSON.parse(r.body) as Record<string, number>)[spec.relay.name] ?? NaN;
}

/** user + system CPU ms of every process in group `pgid` (the emulator: gcloud and its Java child). */
function groupCpuMs(pgid: number | undefined): number {
  if (pgid === undefined) return NaN;
  let ticks = 0;
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return NaN;
  }
  for (const pid of entries) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // After the command: state(0) ppid(1) pgrp(2) … utime(11) stime(12), in clock ticks (100 Hz on Linux).
      if (Number(fields[2]) === pgid) ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the process ended meanwhile
    }
  }
  return ticks * 10;
}

function diff(after: RpcCounts, before: RpcCounts): RpcCounts {
  const out: RpcCounts = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

function per(counts: RpcCounts, n: number): RpcCounts & { total: number } {
  const out: RpcCounts & { total: number } = { total: 0 };
  for (const [k, v] of Object.entries(counts)) {
    out[k] = round(v / n, 3);
    out.total += v / n;
  }
  out.total = round(out.total, 3);
  return out;
}

type Latencies = { all: number[]; read: number[]; write: number[] };

/** What both loops count: changes sent, failed requests (and the first failure), latencies. */
class Tally {
  writes = 0;
  errors = 0;
  firstError: string | undefined;

  constructor(private readonly latencies: Latencies | null) {}

  /** Sends one request; an answer of 300 or more, or an error, is counted, never thrown. */
  async send(spec: LoadSpec, base: URL, c: Client, write: boolean): Promise<void> {
    try {
      const r = await send(spec, base, c, write);
      if (r.status >= 300) {
        this.errors++;
        this.firstError ??= `${r.status} ${r.body.slice(0, 200)}`;
      }
    } catch (err) {
      this.errors++;
      this.firstError ??= String(err);
    }
  }

  /** Counts a finished request and its latency in ms. */
  done(write: boolean, ms: number): void {
    if (this.latencies) {
      this.latencies.all.push(ms);
      (write ? this.latencies.write : this.latencies.read).push(ms);
    }
    if (write) this.writes++;
  }

  get result(): { writes: number; errors: number; firstError?: string } {
    return { writes: this.writes, errors: this.errors, ...(this.firstError ? { firstError: this.firstError } : {}) };
  }
}

async function phase(
  spec: LoadSpec,
  base: URL,
  clients: Client[],
  total: number,
  latencies: Latencies | null,
): Promise<{ writes: number; errors: number; firstError?: string }> {
  let next = 0;
  const tally = new Tally(latencies);
  await Promise.all(
    clients.map(async (c) => {
      for (let n = next++; n < total; n = next++) {
        const write = isWrite(n, spec.writeRatio);
        const t0 = process.hrtime.bigint();
        await tally.send(spec, base, c, write);
        tally.done(write, Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  return tally.result;
}

interface OpenStats {
  lateSends: number;
  maxLateMs: number;
  queuedOnClient: number;
  /** From the first scheduled send to the last answer, ms. */
  spanMs: number;
}

/**
 * The open loop: request n is due at start + n / rate and goes out then (or as soon as the event
 * loop lets it) on the next idle client, whether or not earlier requests were answered; its latency
 * runs from the time it was due, not from when it left.
 */
async function openPhase(
  spec: LoadSpec,
  base: URL,
  clients: Client[],
  total: number,
  rate: number,
  latencies: Latencies | null,
): Promise<{ writes: number; errors: number; firstError?: string; stats: OpenStats }> {
  const interval = 1000 / rate;
  const start = performance.now() + 20;
  const tally = new Tally(latencies);
  const stats: OpenStats = { lateSends: 0, maxLateMs: 0, queuedOnClient: 0, spanMs: 0 };
  let cursor = 0;
  let lastDone = start;
  const pending: Array<Promise<void>> = [];
  const pick = (): Client => {
    for (let i = 0; i < clients.length; i++) {
      const c = clients[(cursor + i) % clients.length]!;
      if (c.busy === 0) {
        cursor = (cursor + i + 1) % clients.length;
        return c;
      }
    }
    stats.queuedOnClient++;
    const c = clients[cursor]!;
    cursor = (cursor + 1) % clients.length;
    return c;
  };
  const one = async (n: number, due: number): Promise<void> => {
    const write = isWrite(n, spec.writeRatio);
    const c = pick();
    c.busy++;
    await tally.send(spec, base, c, write);
    c.busy--;
    const done = performance.now();
    lastDone = Math.max(lastDone, done);
    tally.done(write, done - due);
  };
  for (let n = 0; n < total; n++) {
    const due = start + n * interval;
    const wait = due - performance.now();
    if (wait >= 1) await new Promise((r) => setTimeout(r, wait));
    else if (wait > 0) await new Promise((r) => setImmediate(r));
    const late = performance.now() - due;
    if (late >= 1) stats.lateSends++;
    stats.maxLateMs = Math.max(stats.maxLateMs, late);
    pending.push(one(n, due));
  }
  await Promise.all(pending);
  stats.spanMs = lastDone - start;
  return { ...tally.result, stats };
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const base = new URL(spec.url);
  const clients: Client[] = [];
  for (let i = 0; i < spec.clients; i += 8) {
    clients.push(...(await Promise.all(Array.from({ length: Math.min(8, spec.clients - i) }, (_, j) => setup(spec, base, i + j)))));
  }
  // The warm-up in the mode of the run: an open-loop run starts measuring in its steady state, not
  // behind the queue a closed-loop warm-up leaves.
  if (spec.rate) await openPhase(spec, base, clients, spec.warmup, spec.rate, null);
  else await phase(spec, base, clients, spec.warmup, null);

  const before = await rpcs(base);
  const wireBefore = await wireRpcs(spec);
  const emulatorBefore = groupCpuMs(spec.emulatorPgid);
  const loadStart = round(loadavg()[0]!, 2);
  const lat = { all: [] as number[], read: [] as number[], write: [] as number[] };
  const t0 = process.hrtime.bigint();
  let open: OpenStats | undefined;
  let outcome: { writes: number; errors: number; firstError?: string };
  if (spec.rate) {
    const o = await openPhase(spec, base, clients, spec.requests, spec.rate, lat);
    open = o.stats;
    outcome = o;
  } else {
    outcome = await phase(spec, base, clients, spec.requests, lat);
  }
  const { writes, errors, firstError } = outcome;
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const loadEnd = round(loadavg()[0]!, 2);
  const after = await rpcs(base);
  const wireAfter = await wireRpcs(spec);
  const emulatorAfter = groupCpuMs(spec.emulatorPgid);

  // Round trips per kind, one request at a time so nothing else is counted.
  const probeClient = clients[0]!;
  const r0 = await rpcs(base);
  const w0 = await wireRpcs(spec);
  for (let i = 0; i < spec.probe; i++) await send(spec, base, probeClient, false);
  const r1 = await rpcs(base);
  const w1 = await wireRpcs(spec);
  for (let i = 0; i < spec.probe; i++) await send(spec, base, probeClient, true);
  const r2 = await rpcs(base);
  const w2 = await wireRpcs(spec);
  for (const c of clients) c.agent.destroy();

  for (const l of Object.values(lat)) l.sort((a, b) => a - b);
  const latencies = lat.all;
  const rpcCounts = diff(after.counts, before.counts);
  const rpcTotal = Object.values(rpcCounts).reduce((a, b) => a + b, 0);
  return {
    stack: spec.label ?? spec.stack,
    clients: spec.clients,
    requests: spec.requests,
    writes,
    errors,
    ...(firstError ? { firstError } : {}),
    elapsedMs: round(elapsedMs, 1),
    throughput: round((spec.requests / elapsedMs) * 1000, 1),
    p50: round(percentile(latencies, 50), 2),
    p90: round(percentile(latencies, 90), 2),
    p99: round(percentile(latencies, 99), 2),
    max: round(latencies[latencies.length - 1] ?? NaN, 2),
    read: { p50: round(percentile(lat.read, 50), 2), p99: round(percentile(lat.read, 99), 2) },
    write: { p50: round(percentile(lat.write, 50), 2), p99: round(percentile(lat.write, 99), 2) },
    rpcs: rpcCounts,
    rpcPerRequest: round(rpcTotal / spec.requests, 3),
    rpcPerRead: per(diff(r1.counts, r0.counts), spec.probe),
    rpcPerWrite: per(diff(r2.counts, r1.counts), spec.probe),
    ...(spec.relay
      ? {
          wire: {
            perRequest: round((wireAfter - wireBefore) / spec.requests, 3),
            perRead: round((w1 - w0) / spec.probe, 3),
            perWrite: round((w2 - w1) / spec.probe, 3),
          },
        }
      : {}),
    serverRssMb: round(after.rss / 2 ** 20, 1),
    serverNode: after.node,
    gc: {
      pausesPer1000: round(((after.gc.count - before.gc.count) / spec.requests) * 1000, 2),
      msPer1000: round(((after.gc.ms - before.gc.ms) / spec.requests) * 1000, 2),
      majorPer1000: round(((after.gc.major - before.gc.major) / spec.requests) * 1000, 2),
      over2msPer1000: round(((after.gc.over2ms - before.gc.over2ms) / spec.requests) * 1000, 2),
      maxMs: round(after.gc.maxMsSinceLastRead, 2),
    },
    load: [loadStart, loadEnd],
    ...(spec.rate && open
      ? {
          open: {
            rate: spec.rate,
            achievedRate: round((spec.requests / open.spanMs) * 1000, 1),
            lateSends: open.lateSends,
            maxLateMs: round(open.maxLateMs, 2),
            queuedOnClient: open.queuedOnClient,
          },
        }
      : {}),
    serverCpuMsPerRequest: round((after.cpuMs - before.cpuMs) / spec.requests, 3),
    emulatorCpuMsPerRequest: round((emulatorAfter - emulatorBefore) / spec.requests, 3),
  };
}

if (require.main === module) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const timer = setTimeout(() => {
    console.error(`load generator: no result within ${spec.timeoutMs} ms`);
    process.exit(2);
  }, spec.timeoutMs);
  runLoad(spec).then(
    (result) => {
      clearTimeout(timer);
      console.log(JSON.stringify(result));
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack : String(err));
      process.exit(1);
    },
  );
}
