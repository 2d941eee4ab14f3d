/**
 * Load generator of the request-path benchmark, run as its own process (so its CPU is not the
 * server's). Each virtual client holds its own session (its own cookie) on its own keep-alive
 * connection and sends one request at a time; `clients` is thus the concurrency. autocannon was
 * the first choice, but its per-connection context is reset after every pass over the request list,
 * so it cannot keep one cookie per connection; this is the few lines it takes instead.
 *
 * Input: one JSON argument (LoadSpec). Output: one JSON line (LoadResult).
 */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
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
  const c: Client = { agent, cookie: cookie ?? '', staticKey, counter: 0 };
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

async function rpcs(base: URL): Promise<{ counts: RpcCounts; rss: number; cpuMs: number }> {
  const r = await request(base, undefined, 'GET', '/__rpc', {});
  if (r.status !== 200) throw new Error(`/__rpc answered ${r.status}: is the server running with the preload?`);
  const parsed = JSON.parse(r.body) as { counts: RpcCounts; memory: number; cpuMs: number };
  return { counts: parsed.counts, rss: parsed.memory, cpuMs: parsed.cpuMs };
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

async function phase(
  spec: LoadSpec,
  base: URL,
  clients: Client[],
  total: number,
  latencies: { all: number[]; read: number[]; write: number[] } | null,
): Promise<{ writes: number; errors: number; firstError?: string }> {
  let next = 0;
  let writes = 0;
  let errors = 0;
  let firstError: string | undefined;
  await Promise.all(
    clients.map(async (c) => {
      for (let n = next++; n < total; n = next++) {
        const write = isWrite(n, spec.writeRatio);
        const t0 = process.hrtime.bigint();
        try {
          const r = await send(spec, base, c, write);
          if (r.status >= 300) {
            errors++;
            firstError ??= `${r.status} ${r.body.slice(0, 200)}`;
          }
        } catch (err) {
          errors++;
          firstError ??= String(err);
        }
        if (latencies) {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          latencies.all.push(ms);
          (write ? latencies.write : latencies.read).push(ms);
        }
        if (write) writes++;
      }
    }),
  );
  return { writes, errors, firstError };
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const base = new URL(spec.url);
  const clients: Client[] = [];
  for (let i = 0; i < spec.clients; i += 8) {
    clients.push(...(await Promise.all(Array.from({ length: Math.min(8, spec.clients - i) }, (_, j) => setup(spec, base, i + j)))));
  }
  await phase(spec, base, clients, spec.warmup, null);

  const before = await rpcs(base);
  const wireBefore = await wireRpcs(spec);
  const emulatorBefore = groupCpuMs(spec.emulatorPgid);
  const lat = { all: [] as number[], read: [] as number[], write: [] as number[] };
  const t0 = process.hrtime.bigint();
  const { writes, errors, firstError } = await phase(spec, base, clients, spec.requests, lat);
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
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
