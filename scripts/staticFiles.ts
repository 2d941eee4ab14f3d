/**
 * `npm start -- --static DIR`: your own page next to the session API, on one origin. The demo
 * server (scripts/demoServer.ts) keeps proxying `/session…` and `/users…` to sessionApi, relaying
 * `/demo/login` and serving `/client/sessionClient.mjs`; every other GET or HEAD is answered from
 * DIR by the handler made here (`/` and directories by their index.html), so a page in DIR calls
 * the API and imports the browser client on its own origin, as it would behind a Hosting rewrite.
 * For local use only: no caching, no ranges, no compression.
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
};

/** A directory the launcher cannot serve: the message is printed with the usage, exit code 2. */
export class StaticDirError extends Error {}

/** The real path of DIR, checked: it must exist and be a directory. */
export function staticRoot(dir: string): string {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new StaticDirError(`--static ${dir}: not a directory`);
  return realpathSync(abs);
}

function notFound(res: ServerResponse, head: boolean): void {
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(head ? undefined : 'not found\n');
}

/**
 * A request handler over `root` (a real path, from staticRoot()): answers GET and HEAD with the
 * file the path names, or 404, and returns true; returns false for other methods (the caller's
 * 404). A path that leaves `root` (`..`, an encoded one, a symlink pointing out) is a 404.
 *
 * @example
 * const serve = staticFiles(staticRoot('public'));
 * createServer((req, res) => serve(req, res) || res.writeHead(405).end());
 */
export function staticFiles(root: string): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const head = req.method === 'HEAD';
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://static').pathname);
    } catch {
      notFound(res, head);
      return true;
    }
    if (path.includes('\0')) {
      notFound(res, head);
      return true;
    }
    let file = resolve(join(root, path));
    try {
      if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
      if (!existsSync(file)) {
        notFound(res, head);
        return true;
      }
      file = realpathSync(file);
    } catch {
      notFound(res, head);
      return true;
    }
    if (file !== root && !file.startsWith(root + sep)) {
      notFound(res, head);
      return true;
    }
    const body = readFileSync(file);
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'Content-Length': body.length,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(head ? undefined : body);
    return true;
  };
}
