/**
 * The demo page of `npm start`: one origin serving a page, the browser client, and the session API
 * under `/session` (forwarded as a Firebase Hosting rewrite would: path, method, body, Cookie and
 * Set-Cookie untouched, X-Forwarded-Host/Proto added), plus the one route a page cannot call
 * itself: login, which is privileged, relayed by this "backend" with the local admin token.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';

/** Connection-level headers a proxy must not pass on (RFC 9110 §7.6.1). */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'host',
];

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out = { ...headers };
  for (const h of HOP_BY_HOP) delete out[h];
  return out;
}

/**
 * Forwards one request to `target` (an http origin) and streams the answer back. `add` replaces
 * same-named request headers (a proxy sets X-Forwarded-*, it does not trust the client's). The
 * request goes to the target's host and port whatever `path` says: it is sent as the request line's
 * path, never resolved against the target (`new URL('//evil.example/x', target)` is evil.example).
 */
export function forward(
  req: IncomingMessage,
  res: ServerResponse,
  target: string,
  add: Record<string, string> = {},
  path = req.url ?? '/',
): void {
  const headers = { ...endToEnd(req.headers), ...add };
  const to = new URL(target);
  const where = { protocol: to.protocol, hostname: to.hostname.replace(/^\[(.*)\]$/, '$1'), port: to.port, path };
  const upstream = httpRequest({ ...where, method: req.method, headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
    answer.pipe(res);
  });
  upstream.on('error', () => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(502, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify({ error: { code: 'bad_gateway', message: 'the session API is not reachable' } }));
  });
  req.pipe(upstream);
}

/** The headers a Hosting rewrite adds: the host and scheme the browser used. */
export function forwardedHeaders(req: IncomingMessage): Record<string, string> {
  const encrypted = (req.socket as Partial<TLSSocket>).encrypted === true;
  return { 'x-forwarded-host': req.headers.host ?? '', 'x-forwarded-proto': encrypted ? 'https' : 'http' };
}

function root(): string {
  // dist/scripts/demoServer.js at run time, scripts/demoServer.ts under ts-jest.
  const found = [join(__dirname, '..'), join(__dirname, '..', '..')].find((dir) => existsSync(join(dir, 'scripts', 'demo', 'index.html')));
  if (!found) throw new Error('scripts/demo/index.html not found next to the launcher');
  return found;
}

export interface DemoOptions {
  /** The sessionApi server, e.g. http://127.0.0.1:8080. */
  apiUrl: string;
  /** A privileged token for the login relay (audience: the API's SESSION_ADMIN_AUDIENCE). */
  adminToken: () => string;
  /** Serve https with this key and certificate (tests: a self-signed one), else http. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /**
   * Your own page instead of the demo's (`npm start -- --static DIR`, scripts/staticFiles.ts): asked
   * for every request the proxy, the login relay and the client module do not take; true if it answered.
   */
  files?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** The host names (the Host header without its port) the demo answers to; default LOCAL_HOSTS. */
  hosts?: readonly string[];
}

/**
 * The names `npm start`'s demo answers to (it listens on 127.0.0.1 and prints http://localhost:PORT).
 * Any other Host is refused: a site whose name an attacker points at 127.0.0.1 (DNS rebinding)
 * would otherwise be served the demo and the API under its own origin.
 */
export const LOCAL_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

/** The host name of a Host header (`name[:port]`, an IPv6 literal in brackets), lower case; null if malformed. */
function hostName(host: string | undefined): string | null {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::\d*)?$/i.exec(host ?? '');
  return m?.[1] ? m[1].toLowerCase() : null;
}

/**
 * The path and query of a request whose target is in origin form (RFC 9112 §3.2.1: a single `/`
 * and a path), dot segments resolved as the URL parser does; null for every target that names a
 * host or is no path: the absolute form (`http://evil.example/x`), a scheme-relative `//evil.example/x`
 * (what a browser sends for a link to http://localhost:8083//evil.example/x), a backslash (the URL
 * parser reads `/\evil.example` as `//evil.example`), `*`. What is routed is what is forwarded.
 *
 * @example
 * originFormPath('/session/data/a?x=1'); // '/session/data/a?x=1'
 * originFormPath('//evil.example/session'); // null
 */
export function originFormPath(target: string | undefined): string | null {
  if (target === undefined || !target.startsWith('/') || target.startsWith('//') || target.includes('\\')) return null;
  const base = 'origin-form.invalid';
  let url: URL;
  try {
    url = new URL(`http://${base}${target}`);
  } catch {
    return null;
  }
  return url.host === base ? url.pathname + url.search : null;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * The login relay checks that the request comes from the demo page itself (the Origin, or
 * Sec-Fetch-Site for browsers that omit it): a login started by another site would log the
 * browser into an account of that site's choosing. Real backends check the user's credentials here.
 */
function fromThisOrigin(req: IncomingMessage, forwarded: Record<string, string>): boolean {
  const origin = req.headers.origin;
  if (origin !== undefined) return origin === `${forwarded['x-forwarded-proto']}://${forwarded['x-forwarded-host']}`;
  return req.headers['sec-fetch-site'] === undefined || req.headers['sec-fetch-site'] === 'same-origin';
}

/**
 * The demo server: the page, the browser client, the API under /session and /users, the login
 * relay. Only requests for a path (origin form) with a Host of `options.hosts` are served; anything
 * else is 404 and goes nowhere, so it is no proxy to another host.
 *
 * @example
 * const demo = createDemoServer({ apiUrl: 'http://127.0.0.1:8080', adminToken: () => token });
 * demo.listen(8083, '127.0.0.1');
 */
export function createDemoServer(options: DemoOptions): Server {
  const dir = root();
  const page = () => readFileSync(join(dir, 'scripts', 'demo', 'index.html'));
  const clientFile = join(dir, 'dist', 'client', 'sessionClient.mjs');
  const hosts = new Set((options.hosts ?? LOCAL_HOSTS).map((h) => h.toLowerCase()));
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const target = originFormPath(req.url);
    const name = hostName(req.headers.host);
    if (target === null || name === null || !hosts.has(name)) {
      return sendJson(res, 404, { error: { code: 'not_found', message: 'no such page' } });
    }
    const path = target.replace(/\?.*$/, '');
    const forwarded = forwardedHeaders(req);
    if (path === '/session' || path.startsWith('/session/') || path === '/users' || path.startsWith('/users/')) {
      forward(req, res, options.apiUrl, forwarded, target);
    } else if (path === '/demo/login' && req.method === 'POST') {
      if (!fromThisOrigin(req, forwarded))
        return sendJson(res, 403, { error: { code: 'cross_site', message: 'only the demo page may log in' } });
      forward(req, res, options.apiUrl, { ...forwarded, authorization: `Bearer ${options.adminToken()}` }, '/session/login');
    } else if (options.files && path !== '/client/sessionClient.mjs' && options.files(req, res)) {
      // answered from the user's directory
    } else if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(page());
    } else if (path === '/client/sessionClient.mjs' && (req.method === 'GET' || req.method === 'HEAD')) {
      if (!existsSync(clientFile))
        return sendJson(res, 500, { error: { code: 'not_built', message: 'run npm run build: dist/client is missing' } });
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(readFileSync(clientFile));
    } else {
      sendJson(res, 404, { error: { code: 'not_found', message: 'no such page' } });
    }
  };
  return options.tls ? createHttpsServer(options.tls, handler) : createHttpServer(handler);
}
