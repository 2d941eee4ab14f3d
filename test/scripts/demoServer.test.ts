/**
 * The demo server of `npm start` as a proxy (issue 26, finding 4): it forwards a path to the
 * configured API and nothing else. Raw sockets write the request line and Host as an attacker
 * (or a browser following a link to http://localhost:8083//evil.example/session) would.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createDemoServer } from '../../scripts/demoServer';

interface Received {
  method: string;
  url: string;
  cookie: string | undefined;
  host: string | undefined;
}

/** An HTTP server that records every request and answers 200 with a cookie of its own. */
function recorder(name: string): { server: Server; seen: Received[] } {
  const seen: Received[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', cookie: req.headers.cookie, host: req.headers.host });
    res.writeHead(200, { 'Content-Type': 'text/html', 'Set-Cookie': `${name}=planted; Path=/` });
    res.end(`<h1>${name}</h1>`);
  });
  return { server, seen };
}

const listen = (server: Server) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
const stop = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

/** One raw request: the request line's target and Host exactly as given; resolves with the status and the head. */
function raw(port: number, target: string, host: string, method = 'GET'): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      const head = text.slice(0, text.indexOf('\r\n\r\n'));
      resolve({ status: Number(head.split(' ')[1]), head: head.toLowerCase() });
    });
    socket.write(`${method} ${target} HTTP/1.1\r\nHost: ${host}\r\nCookie: __Host-viur_cookie_local=SECRET\r\nConnection: close\r\n\r\n`);
  });
}

const api = recorder('api');
const evil = recorder('evil');
let demo: Server;
let apiPort: number;
let evilPort: number;
let demoPort: number;

beforeAll(async () => {
  apiPort = await listen(api.server);
  evilPort = await listen(evil.server);
  demo = createDemoServer({ apiUrl: `http://127.0.0.1:${apiPort}`, adminToken: () => 'local-admin-token' });
  demoPort = await listen(demo);
});
afterAll(async () => {
  await Promise.all([stop(api.server), stop(evil.server), stop(demo)]);
});
beforeEach(() => {
  api.seen.length = 0;
  evil.seen.length = 0;
});

describe('the demo proxy forwards a path to the configured API, nothing else', () => {
  test('origin-form paths under /session and /users reach the API with the Cookie, path and query as sent', async () => {
    for (const target of ['/session', '/session/data/a%20b?x=1', '/users/alice/sessions', '/session/']) {
      const res = await raw(demoPort, target, `localhost:${demoPort}`);
      expect([target, res.status]).toEqual([target, 200]);
    }
    expect(api.seen.map((r) => [r.url, r.cookie])).toEqual([
      ['/session', '__Host-viur_cookie_local=SECRET'],
      ['/session/data/a%20b?x=1', '__Host-viur_cookie_local=SECRET'],
      ['/users/alice/sessions', '__Host-viur_cookie_local=SECRET'],
      ['/session/', '__Host-viur_cookie_local=SECRET'],
    ]);
  });

  test.each([
    ['a scheme-relative path (a link to http://localhost:8083//evil/session)', (p: number) => `//127.0.0.1:${p}/session`],
    ['a scheme-relative path to /users', (p: number) => `//localhost:${p}/users/x`],
    ['the absolute form', (p: number) => `http://127.0.0.1:${p}/session`],
    ['the absolute form with credentials', (p: number) => `http://user:pw@127.0.0.1:${p}/session/data/a`],
    ['a backslash the URL parser reads as a slash', (p: number) => `/\\127.0.0.1:${p}/session`],
    ['three slashes', (p: number) => `///127.0.0.1:${p}/session`],
    ['a dot segment before the authority', (p: number) => `/.//127.0.0.1:${p}/session`],
    ['the asterisk form', () => '*'],
  ])('%s: 404, forwarded nowhere', async (_name, target) => {
    const res = await raw(demoPort, target(evilPort), `localhost:${demoPort}`);
    expect({ status: res.status, setCookie: res.head.includes('set-cookie'), evil: evil.seen, api: api.seen }).toEqual({
      status: 404,
      setCookie: false,
      evil: [],
      api: [],
    });
  });

  test('the login relay takes only its own path, with the admin token, to the API', async () => {
    const res = await raw(demoPort, `//127.0.0.1:${evilPort}/demo/login`, `localhost:${demoPort}`, 'POST');
    expect(res.status).toBe(404);
    expect(evil.seen).toEqual([]);
    expect(api.seen).toEqual([]);
  });

  test('a Host other than a localhost name (DNS rebinding) is refused; localhost, 127.0.0.1 and [::1] are served', async () => {
    for (const host of [
      'evil.example',
      `evil.example:${demoPort}`,
      `localhost.evil.example:${demoPort}`,
      `127.0.0.1.nip.io:${demoPort}`,
      '',
    ]) {
      const page = await raw(demoPort, '/', host);
      const proxied = await raw(demoPort, '/session', host);
      expect([host, page.status, proxied.status]).toEqual([host, 404, 404]);
    }
    expect(api.seen).toEqual([]);
    for (const host of [`localhost:${demoPort}`, `127.0.0.1:${demoPort}`, `[::1]:${demoPort}`, 'localhost', 'LOCALHOST']) {
      expect([host, (await raw(demoPort, '/session', host)).status]).toEqual([host, 200]);
    }
    expect(api.seen.map((r) => r.host)).toEqual(Array(5).fill(`127.0.0.1:${apiPort}`));
  });
});
