/**
 * Benchmark 1, the request path: sessionApi under the real functions-framework next to
 * express-session + @google-cloud/connect-datastore, both on the same Datastore emulator, driven by
 * the same load generator (its own process) with the same workload and concurrency. The two stacks
 * take turns, run after run, so that noise on this shared machine falls on both alike; the report
 * is the median of the runs.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { freePort } from '../scripts/emulators';
import type { RelaySet } from './latencyRelay';
import type { LoadResult, LoadSpec } from './loadgen';
import { BENCH_JS, FUNCTIONS_FRAMEWORK, FUNCTIONS_SOURCE, lastJson, runNode, type ServerProcess, startServer } from './proc';
import type { ServerNode } from './serverNode';
import { median, ratio, round } from './stats';

export interface RequestOptions {
  datastoreHost: string;
  /** Process group of the emulator, for its CPU time per request. */
  emulatorPgid?: number;
  project: string;
  clients: number;
  requests: number;
  warmup: number;
  probe: number;
  repeats: number;
  mixes: Array<{ name: string; writeRatio: number }>;
  /** Also run the baseline app under functions-framework (the platform's share of the cost). */
  ffBaseline: boolean;
  /**
   * Another build of functions/index.js (e.g. the commit before a change), run as one more stack,
   * "ours-alt", in the same run: what a change bought, measured against itself.
   */
  altSource?: string;
  /** Also run sessionApi with SESSION_READ_CACHE_MS set to this ("ours-cache"), next to the others. */
  readCacheMs?: number;
  /** The size curve: read-mostly runs of ours and express with sessions of these sizes (fewer requests). */
  sizes?: Array<{ keys: number; bytes: number }>;
  sizeRequests?: number;
  sizeRepeats?: number;
  /**
   * Production-latency mode: every server reaches the emulator through a relay of its own from this
   * set (the added round trip, and RPCs counted at the wire).
   */
  relays?: RelaySet;
  /** Extra environment of our stacks (DATASTORE_EMULATOR_TRANSACTIONS=lookup on the legacy emulator). */
  oursEnv?: Record<string, string>;
  /** What the production-latency mode ran with, recorded in the result. */
  latency?: { rttMs: number; jitterMs: number; emulator: string };
  /** A discarded first round on every stack: the emulator's JIT warms up on it, not on the first measured run. */
  warmupRound: boolean;
  /** The Node every server stack runs on (--server-node); the benchmark's own when not given. */
  serverNode?: ServerNode;
  /** Run the closed-loop mixes (default true); false with `open` runs the open loop only. */
  closed?: boolean;
  /**
   * Open loop (issue 27): the same mixes again at each fixed arrival rate (requests/s per stack),
   * latency from each request's scheduled send time, on `clients` sessions.
   */
  open?: { rates: number[]; clients: number; requests: number; warmup: number };
}

export type Stack = 'ours' | 'express' | 'ff-express';

export interface StackSummary {
  throughput: number;
  /** Server GC pauses per 1,000 measured requests, their ms per 1,000, and the longest pause (medians of the runs). */
  gcPausesPer1000: number;
  gcMsPer1000: number;
  gcMaxMs: number;
  /** The machine's 1-minute load average over the runs (median of each run's start and end). */
  load: number;
  p50: number;
  p99: number;
  readP50: number;
  readP99: number;
  writeP50: number;
  writeP99: number;
  /** Production-latency mode: RPCs at the relay per measured request, per read and per write (one at a time). */
  wirePerRequest?: number;
  wirePerRead?: number;
  wirePerWrite?: number;
  rpcPerRequest: number;
  rpcPerRead: number;
  rpcPerWrite: number;
  rpcPerReadDetail: Record<string, number>;
  rpcPerWriteDetail: Record<string, number>;
  errors: number;
  serverCpuMsPerRequest: number;
  emulatorCpuMsPerRequest: number;
}

export interface MixResult {
  mix: string;
  writeRatio: number;
  clients: number;
  requests: number;
  repeats: number;
  ours: StackSummary;
  express: StackSummary;
  /** The same express-session app, run under functions-framework as sessionApi is. */
  ffExpress?: StackSummary;
  /** ours ÷ express (throughput: higher is better; latency: lower is better). */
  ratios: { throughput: number; p50: number; p99: number };
  /** ours ÷ ff-express: the session code alone, both on the same platform. */
  ratiosSamePlatform?: { throughput: number; p50: number; p99: number };
  /** The alternative build of ours (altSource), when given. */
  oursAlt?: StackSummary;
  /** Ours with the opt-in read cache (readCacheMs), when given. */
  oursCache?: StackSummary;
  runs: LoadResult[];
}

export interface SizePoint {
  keys: number;
  bytes: number;
  ours: StackSummary;
  express: StackSummary;
  /** ours ÷ express, medians of the repetitions. */
  serverCpuRatio: number;
  throughputRatio: number;
  runs: LoadResult[];
}

export interface OpenLoopResult {
  /** Requests per second each stack was sent, on schedule. */
  rate: number;
  clients: number;
  mixes: MixResult[];
}

export interface RequestBenchResult {
  name: 'request';
  /** Closed loop (empty when only the open loop ran). */
  mixes: MixResult[];
  /** Open loop at each rate asked for. */
  open?: OpenLoopResult[];
  /** The Node the servers ran on: asked for, and what each server reported (`process.version`). */
  serverNode?: { spec: string; version: string; reported: string[] };
  sizeCurve?: SizePoint[];
  /** Production-latency mode: the round trip the relays added and the emulator behind them. */
  latency?: { rttMs: number; jitterMs: number; emulator: string };
  notes: string[];
}

function summarize(runs: LoadResult[]): StackSummary {
  const m = (f: (r: LoadResult) => number) => round(median(runs.map(f)), 3);
  return {
    throughput: m((r) => r.throughput),
    gcPausesPer1000: m((r) => r.gc.pausesPer1000),
    gcMsPer1000: m((r) => r.gc.msPer1000),
    gcMaxMs: m((r) => r.gc.maxMs),
    load: round(median(runs.flatMap((r) => r.load)), 2),
    p50: m((r) => r.p50),
    p99: m((r) => r.p99),
    readP50: m((r) => r.read.p50),
    readP99: m((r) => r.read.p99),
    writeP50: m((r) => r.write.p50),
    writeP99: m((r) => r.write.p99),
    ...(runs[0]!.wire
      ? {
          wirePerRequest: m((r) => r.wire!.perRequest),
          wirePerRead: m((r) => r.wire!.perRead),
          wirePerWrite: m((r) => r.wire!.perWrite),
        }
      : {}),
    rpcPerRequest: m((r) => r.rpcPerRequest),
    rpcPerRead: m((r) => r.rpcPerRead.total),
    rpcPerWrite: m((r) => r.rpcPerWrite.total),
    rpcPerReadDetail: runs[0]!.rpcPerRead,
    rpcPerWriteDetail: runs[0]!.rpcPerWrite,
    errors: runs.reduce((a, r) => a + r.errors, 0),
    serverCpuMsPerRequest: m((r) => r.serverCpuMsPerRequest),
    emulatorCpuMsPerRequest: m((r) => r.emulatorCpuMsPerRequest),
  };
}

export async function runRequestBench(options: RequestOptions, log: (line: string) => void = () => undefined): Promise<RequestBenchResult> {
  const preload = ['-r', join(BENCH_JS, 'rpcPreload.js')];
  // The default name (a __Host- cookie), named explicitly so that an older build (--alt-source) uses it too.
  const OURS_COOKIE = `__Host-viur_cookie_${options.project}`;
  const common = {
    SESSION_COOKIE_NAME: OURS_COOKIE,
    DATASTORE_EMULATOR_HOST: options.datastoreHost,
    GOOGLE_CLOUD_PROJECT: options.project,
    BENCH_COUNT_RPCS: '1',
    NODE_ENV: 'production',
  };
  const servers: ServerProcess[] = [];
  // Each server its own relay in the production-latency mode, so that its RPCs are counted apart.
  const host = async (name: string): Promise<{ DATASTORE_EMULATOR_HOST: string }> => ({
    DATASTORE_EMULATOR_HOST: options.relays ? (await options.relays.relay(name)).host : options.datastoreHost,
  });
  const oursEnv = options.oursEnv ?? {};
  const nodeBin = options.serverNode?.bin;
  try {
    const oursPort = await freePort();
    const ours = await startServer(
      [
        ...preload,
        FUNCTIONS_FRAMEWORK,
        '--target=sessionApi',
        '--signature-type=http',
        `--port=${oursPort}`,
        `--source=${FUNCTIONS_SOURCE}`,
      ],
      { ...common, ...(await host('ours')), ...oursEnv, SESSION_NAMESPACE: `bench-${randomBytes(4).toString('hex')}` },
      oursPort,
      'sessionApi (functions-framework)',
      nodeBin,
    );
    servers.push(ours);
    const expressPort = await freePort();
    const express = await startServer(
      [...preload, join(BENCH_JS, 'expressServer.js')],
      { ...common, ...(await host('express')), PORT: String(expressPort), BENCH_NAMESPACE: `bench-${randomBytes(4).toString('hex')}` },
      expressPort,
      'express-session',
      nodeBin,
    );
    servers.push(express);
    let ffExpress: ServerProcess | undefined;
    if (options.ffBaseline) {
      const ffPort = await freePort();
      ffExpress = await startServer(
        [
          ...preload,
          FUNCTIONS_FRAMEWORK,
          '--target=expressSession',
          '--signature-type=http',
          `--port=${ffPort}`,
          `--source=${join(BENCH_JS, 'expressFunction.js')}`,
        ],
        { ...common, ...(await host('ff-express')), BENCH_NAMESPACE: `bench-${randomBytes(4).toString('hex')}` },
        ffPort,
        'express-session (functions-framework)',
        nodeBin,
      );
      servers.push(ffExpress);
    }
    let oursAlt: ServerProcess | undefined;
    if (options.altSource) {
      const altPort = await freePort();
      oursAlt = await startServer(
        [
          ...preload,
          FUNCTIONS_FRAMEWORK,
          '--target=sessionApi',
          '--signature-type=http',
          `--port=${altPort}`,
          `--source=${options.altSource}`,
        ],
        { ...common, ...(await host('ours-alt')), ...oursEnv, SESSION_NAMESPACE: `bench-${randomBytes(4).toString('hex')}` },
        altPort,
        'sessionApi (alternative build)',
        nodeBin,
      );
      servers.push(oursAlt);
    }
    let oursCache: ServerProcess | undefined;
    if (options.readCacheMs) {
      const cachePort = await freePort();
      oursCache = await startServer(
        [
          ...preload,
          FUNCTIONS_FRAMEWORK,
          '--target=sessionApi',
          '--signature-type=http',
          `--port=${cachePort}`,
          `--source=${FUNCTIONS_SOURCE}`,
        ],
        {
          ...common,
          ...(await host('ours-cache')),
          ...oursEnv,
          SESSION_NAMESPACE: `bench-${randomBytes(4).toString('hex')}`,
          SESSION_READ_CACHE_MS: String(options.readCacheMs),
        },
        cachePort,
        'sessionApi with the read cache',
        nodeBin,
      );
      servers.push(oursCache);
    }
    const stacks: Array<{ stack: Stack; label?: string; server: ServerProcess; cookieName: string }> = [
      { stack: 'ours', server: ours, cookieName: OURS_COOKIE },
      ...(oursAlt ? [{ stack: 'ours' as const, label: 'ours-alt', server: oursAlt, cookieName: OURS_COOKIE }] : []),
      ...(oursCache ? [{ stack: 'ours' as const, label: 'ours-cache', server: oursCache, cookieName: OURS_COOKIE }] : []),
      { stack: 'express', server: express, cookieName: 'connect.sid' },
      ...(ffExpress ? [{ stack: 'ff-express' as const, server: ffExpress, cookieName: 'connect.sid' }] : []),
    ];

    const load = async (
      s: (typeof stacks)[number],
      writeRatio: number,
      requests: number,
      fill?: { keys: number; bytes: number },
      open?: { rate: number; clients: number; warmup: number },
    ): Promise<LoadResult> => {
      const spec: LoadSpec = {
        url: s.server.url,
        stack: s.stack,
        ...(s.label ? { label: s.label } : {}),
        cookieName: s.cookieName,
        clients: options.clients,
        requests,
        warmup: options.warmup,
        writeRatio,
        probe: options.probe,
        timeoutMs: 300_000,
        ...(options.emulatorPgid !== undefined ? { emulatorPgid: options.emulatorPgid } : {}),
        ...(fill ? { fill, warmup: Math.min(options.warmup, 80) } : {}),
        ...(options.relays ? { relay: { countUrl: options.relays.controlUrl, name: s.label ?? s.stack } } : {}),
        ...(open ? { rate: open.rate, clients: open.clients, warmup: open.warmup } : {}),
      };
      const { stdout, stderr, code } = await runNode([join(BENCH_JS, 'loadgen.js'), JSON.stringify(spec)], {}, spec.timeoutMs + 10_000);
      if (code !== 0) throw new Error(`load generator failed (${code}):\n${stderr}\nserver output:\n${s.server.output().slice(-3000)}`);
      return lastJson<LoadResult>(stdout);
    };
    if (options.warmupRound) {
      for (const s of stacks) {
        const r = await load(s, 0.5, options.requests);
        log(`  request warm-up (discarded) ${(s.label ?? s.stack).padEnd(10)} ${r.throughput} req/s`);
      }
    }
    const runMixes = async (open?: { rate: number; clients: number; warmup: number }): Promise<MixResult[]> => {
      const mixes: MixResult[] = [];
      for (const mix of options.mixes) {
        const runs: LoadResult[] = [];
        for (let rep = 0; rep < options.repeats; rep++) {
          // Rotate which stack goes first, so none always runs on a warmer (or busier) emulator.
          const order = [...stacks.slice(rep % stacks.length), ...stacks.slice(0, rep % stacks.length)];
          for (const s of order) {
            const { stack, label } = s;
            const result = await load(
              s,
              mix.writeRatio,
              open ? (options.open?.requests ?? options.requests) : options.requests,
              undefined,
              open,
            );
            runs.push(result);
            log(
              `  request${options.latency ? ` rtt ${options.latency.rttMs} ms` : ''}${open ? ` open ${open.rate}/s` : ''} ${mix.name} run ${rep + 1}/${options.repeats} ${(label ?? stack).padEnd(10)} ${result.throughput} req/s read p50/p99 ${result.read.p50}/${result.read.p99} ms write p50/p99 ${result.write.p50}/${result.write.p99} ms rpc/req ${result.rpcPerRequest}${result.wire ? ` wire rpc/read ${result.wire.perRead} /write ${result.wire.perWrite}` : ''} cpu/req server ${result.serverCpuMsPerRequest} ms emulator ${result.emulatorCpuMsPerRequest} ms gc/1000 ${result.gc.pausesPer1000} (${result.gc.msPer1000} ms, max ${result.gc.maxMs} ms)${result.open ? ` late sends ${result.open.lateSends} (max ${result.open.maxLateMs} ms) queued ${result.open.queuedOnClient}` : ''} load ${result.load.join('→')} node ${result.serverNode} errors ${result.errors}${result.firstError ? ` (${result.firstError})` : ''}`,
            );
          }
        }
        const oursSummary = summarize(runs.filter((r) => r.stack === 'ours'));
        const expressSummary = summarize(runs.filter((r) => r.stack === 'express'));
        const ffRuns = runs.filter((r) => r.stack === 'ff-express');
        const ffSummary = ffRuns.length > 0 ? summarize(ffRuns) : undefined;
        const altRuns = runs.filter((r) => r.stack === 'ours-alt');
        const cacheRuns = runs.filter((r) => r.stack === 'ours-cache');
        mixes.push({
          mix: mix.name,
          writeRatio: mix.writeRatio,
          clients: open?.clients ?? options.clients,
          requests: open ? (options.open?.requests ?? options.requests) : options.requests,
          repeats: options.repeats,
          ours: oursSummary,
          express: expressSummary,
          ...(ffSummary ? { ffExpress: ffSummary } : {}),
          ...(altRuns.length > 0 ? { oursAlt: summarize(altRuns) } : {}),
          ...(cacheRuns.length > 0 ? { oursCache: summarize(cacheRuns) } : {}),
          ratios: {
            throughput: ratio(oursSummary.throughput, expressSummary.throughput),
            p50: ratio(oursSummary.p50, expressSummary.p50),
            p99: ratio(oursSummary.p99, expressSummary.p99),
          },
          ...(ffSummary
            ? {
                ratiosSamePlatform: {
                  throughput: ratio(oursSummary.throughput, ffSummary.throughput),
                  p50: ratio(oursSummary.p50, ffSummary.p50),
                  p99: ratio(oursSummary.p99, ffSummary.p99),
                },
              }
            : {}),
          runs,
        });
      }
      return mixes;
    };
    const mixes = options.closed === false ? [] : await runMixes();
    const openResults: OpenLoopResult[] = [];
    for (const rate of options.open?.rates ?? []) {
      const clients = options.open!.clients;
      openResults.push({ rate, clients, mixes: await runMixes({ rate, clients, warmup: options.open!.warmup }) });
    }
    const sizeCurve: SizePoint[] = [];
    for (const size of options.sizes ?? []) {
      const pair = stacks.filter((x) => x.label === undefined && (x.stack === 'ours' || x.stack === 'express'));
      const runs: LoadResult[] = [];
      // One discarded run per stack at each size first: whichever stack ran first at a new size
      // paid for the JIT's new shapes (ours always did: up to 1.9× its second run's CPU).
      for (const s of pair) await load(s, 0.1, options.sizeRequests ?? options.requests, size);
      for (let rep = 0; rep < (options.sizeRepeats ?? 1); rep++) {
        for (const s of rep % 2 ? [...pair].reverse() : pair) {
          const r = await load(s, 0.1, options.sizeRequests ?? options.requests, size);
          runs.push(r);
          log(
            `  size ${size.keys} keys / ${size.bytes} B ${s.stack.padEnd(10)} ${r.throughput} req/s cpu/req ${r.serverCpuMsPerRequest} ms errors ${r.errors}${r.firstError ? ` (${r.firstError})` : ''}`,
          );
        }
      }
      const o = summarize(runs.filter((r) => r.stack === 'ours'));
      const e = summarize(runs.filter((r) => r.stack === 'express'));
      sizeCurve.push({
        ...size,
        ours: o,
        express: e,
        serverCpuRatio: ratio(o.serverCpuMsPerRequest, e.serverCpuMsPerRequest),
        throughputRatio: ratio(o.throughput, e.throughput),
        runs,
      });
    }
    const reported = [...new Set([...mixes, ...openResults.flatMap((o) => o.mixes)].flatMap((m) => m.runs.map((r) => r.serverNode)))];
    return {
      name: 'request',
      mixes,
      ...(openResults.length > 0 ? { open: openResults } : {}),
      serverNode: { spec: options.serverNode?.spec ?? 'current', version: options.serverNode?.version ?? process.version, reported },
      ...(options.latency ? { latency: options.latency } : {}),
      ...(sizeCurve.length > 0 ? { sizeCurve } : {}),
      notes: [
        'Writes on our API carry the static key (Sec-X-ViUR-StaticSKey): one constant-time compare, like the one cookie check of a typical app; the baseline has no CSRF check at all.',
        'On the emulator our transactions open with a separate beginTransaction (the emulator mishandles lookups that open one), so a write shows beginTransaction + lookup + commit; in production the lookup opens the transaction: lookup + commit.',
        'ff-express is the same express-session app registered as an HTTP function and run under functions-framework, as sessionApi is: the difference to express is what the platform costs any stack (body parsers, a node:domain per request, execution context).',
        'express-session + connect-datastore writes without a transaction (read, then a blind upsert): concurrent requests of one session lose updates; ours merges inside a transaction.',
      ],
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await options.relays?.close();
  }
}
