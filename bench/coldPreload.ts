/**
 * Preloaded (NODE_OPTIONS=--require) into every server the cold-start benchmark spawns; nothing of it
 * is in the product. The command line stays the one the runtime runs (`functions-framework
 * --target=sessionApi`), and the preload loads nothing but node:http and node:fs, which every stack
 * loads anyway.
 *
 * - When the server listens it writes one line to fd 3 (a pipe the benchmark opened): the request is
 *   sent the moment the port is open, as the platform's startup probe would, without polling the port
 *   from a process that would compete for the same two cores.
 * - `GET /__cold` answers the process's CPU time and RSS so far and what deploy/loader.js did with
 *   the code cache, before the application sees the request.
 */
import { writeSync } from 'node:fs';
import http from 'node:http';

const CODE_CACHE = Symbol.for('viur-session.codeCache');

const emit = http.Server.prototype.emit as (this: http.Server, event: string, ...args: unknown[]) => boolean;
http.Server.prototype.emit = function (this: http.Server, event: string, ...args: unknown[]): boolean {
  if (event === 'listening') {
    try {
      writeSync(3, 'listening\n');
    } catch {
      // not started by the benchmark: no fd 3
    }
  } else if (event === 'request') {
    const [req, res] = args as [http.IncomingMessage, http.ServerResponse];
    if (req.url === '/__cold') {
      const cpu = process.cpuUsage();
      const state = (process as unknown as Record<symbol, unknown>)[CODE_CACHE];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          cpuMs: (cpu.user + cpu.system) / 1000,
          rss: process.memoryUsage().rss,
          codeCache: typeof state === 'string' ? state : 'none',
        }),
      );
      return true;
    }
  }
  return emit.call(this, event, ...args);
} as typeof http.Server.prototype.emit;
