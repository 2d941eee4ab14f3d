/**
 * Preloaded into a server process with `node -r dist-bench/bench/rpcPreload.js` when
 * BENCH_COUNT_RPCS=1; nothing of it is in the product. It counts Datastore round trips at the
 * client's RPC level (the methods of the generated v1.DatastoreClient every call goes through, the
 * same observation as test/support/fixtures.ts countRpcs) and answers `GET /__rpc` with the counts
 * so far (and the process's CPU time and RSS), before the application sees the request. Works for any server built on node:http
 * (functions-framework and Express alike).
 */
import http from 'node:http';

const RPC_METHODS = ['lookup', 'runQuery', 'runAggregationQuery', 'beginTransaction', 'commit', 'rollback', 'allocateIds', 'reserveIds'] as const;

if (process.env.BENCH_COUNT_RPCS === '1') {
  const counts: Record<string, number> = {};
  // Resolved from the server's working directory, so it is the very module the application loads.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { v1 } = require(require.resolve('@google-cloud/datastore', { paths: [process.cwd()] })) as typeof import('@google-cloud/datastore');
  const proto = v1.DatastoreClient.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const m of RPC_METHODS) {
    const original = proto[m]!;
    proto[m] = function (this: unknown, ...args: unknown[]) {
      counts[m] = (counts[m] ?? 0) + 1;
      return original.apply(this, args);
    };
  }
  const emit = http.Server.prototype.emit as (this: http.Server, event: string, ...args: unknown[]) => boolean;
  http.Server.prototype.emit = function (this: http.Server, event: string, ...args: unknown[]): boolean {
    if (event === 'request') {
      const [req, res] = args as [http.IncomingMessage, http.ServerResponse];
      if (req.url === '/__rpc') {
        res.writeHead(200, { 'content-type': 'application/json' });
        const cpu = process.cpuUsage();
        res.end(JSON.stringify({ counts, memory: process.memoryUsage().rss, cpuMs: (cpu.user + cpu.system) / 1000 }));
        return true;
      }
    }
    return emit.call(this, event, ...args);
  } as typeof http.Server.prototype.emit;
}
