/**
 * Preloaded into a server process with `node -r dist-bench/bench/rpcPreload.js` when
 * BENCH_COUNT_RPCS=1; nothing of it is in the product. It counts Datastore round trips at the
 * client's RPC level (the methods of the generated v1.DatastoreClient every call goes through, the
 * same observation as test/support/fixtures.ts countRpcs) and answers `GET /__rpc` with the counts
 * so far (and the process's CPU time and RSS, its Node version and its GC pauses), before the application sees the request. Works for any server built on node:http
 * (functions-framework and Express alike).
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector';
import { constants, PerformanceObserver } from 'node:perf_hooks';

/**
 * GC pauses so far, from perf_hooks' `gc` entries (one per pause of the main thread; the same
 * observation as `--trace-gc`, without its output): counts, total and per kind, and the longest
 * since the previous `/__rpc` read (the load generator reads before and after a run, so it is the
 * run's longest).
 */
export interface GcStats {
  count: number;
  ms: number;
  /** Mark-sweep-compact pauses (the long ones). */
  major: number;
  majorMs: number;
  /** Scavenges (young generation). */
  minor: number;
  minorMs: number;
  /** Pauses of 2 ms or more, of any kind. */
  over2ms: number;
  /** The longest pause since the previous read. */
  maxMsSinceLastRead: number;
}

const RPC_METHODS = [
  'lookup',
  'runQuery',
  'runAggregationQuery',
  'beginTransaction',
  'commit',
  'rollback',
  'allocateIds',
  'reserveIds',
] as const;

if (process.env.BENCH_COUNT_RPCS === '1') {
  const counts: Record<string, number> = {};
  // Resolved from the server's working directory, so it is the very module the application loads.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { v1 } = require(require.resolve('@google-cloud/datastore', { paths: [process.cwd()] })) as {
    v1: { DatastoreClient: { prototype: object } };
  };
  const proto = v1.DatastoreClient.prototype as Record<string, (...args: unknown[]) => unknown>;
  for (const m of RPC_METHODS) {
    const original = proto[m]!;
    proto[m] = function (this: unknown, ...args: unknown[]) {
      counts[m] = (counts[m] ?? 0) + 1;
      return original.apply(this, args);
    };
  }
  const gc: GcStats = { count: 0, ms: 0, major: 0, majorMs: 0, minor: 0, minorMs: 0, over2ms: 0, maxMsSinceLastRead: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      gc.count++;
      gc.ms += e.duration;
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.major++;
        gc.majorMs += e.duration;
      } else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        gc.minor++;
        gc.minorMs += e.duration;
      }
      if (e.duration >= 2) gc.over2ms++;
      gc.maxMsSinceLastRead = Math.max(gc.maxMsSinceLastRead, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  const emit = http.Server.prototype.emit as (this: http.Server, event: string, ...args: unknown[]) => boolean;
  http.Server.prototype.emit = function (this: http.Server, event: string, ...args: unknown[]): boolean {
    if (event === 'request') {
      const [req, res] = args as [http.IncomingMessage, http.ServerResponse];
      if (req.url?.startsWith('/__profile/')) {
        profileRoute(req.url, res);
        return true;
      }
      if (req.url === '/__rpc') {
        res.writeHead(200, { 'content-type': 'application/json' });
        const cpu = process.cpuUsage();
        res.end(
          JSON.stringify({ counts, memory: process.memoryUsage().rss, cpuMs: (cpu.user + cpu.system) / 1000, node: process.version, gc }),
        );
        gc.maxMsSinceLastRead = 0;
        return true;
      }
    }
    return emit.call(this, event, ...args);
  } as typeof http.Server.prototype.emit;
}

/**
 * `GET /__profile/start` and `/__profile/stop?file=…` (bench/profile.ts): V8's sampling profiler
 * over just the measured requests, which `--cpu-prof` cannot do (it covers start-up and warm-up too).
 */
let inspector: Session | undefined;
function profileRoute(url: string, res: http.ServerResponse): void {
  const done = (err: Error | null) => {
    res.writeHead(err ? 500 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: !err, error: err?.message }));
  };
  if (url === '/__profile/start') {
    inspector ??= new Session();
    inspector.connect();
    inspector.post('Profiler.enable', () =>
      inspector!.post('Profiler.setSamplingInterval', { interval: 200 }, () => inspector!.post('Profiler.start', (err) => done(err))),
    );
    return;
  }
  const file = new URL(url, 'http://x').searchParams.get('file');
  if (!inspector || !file) return done(new Error('not started, or no file'));
  inspector.post('Profiler.stop', (err, result) => {
    if (!err) writeFileSync(file, JSON.stringify(result.profile));
    inspector!.disconnect();
    done(err);
  });
}
