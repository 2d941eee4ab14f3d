import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { forward } from '../../../scripts/demoServer';
import { ROOT } from '../../support/functionsFramework';

/**
 * Debian's Chromium, driven by playwright-core; never a browser download. Real distinct sites:
 * every *.example.test and *.attacker.test name resolves to this machine, served over https with a
 * certificate made here, so Secure cookies and schemeful same-site rules apply as in production.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--host-resolver-rules=MAP *.example.test 127.0.0.1, MAP *.attacker.test 127.0.0.1',
  '--ignore-certificate-errors',
];

export interface Chromium {
  browser: Browser;
  /** A fresh context: its own cookie jar, as a new browser profile would have. */
  context(): Promise<BrowserContext>;
  close(): Promise<void>;
}

/** Launches Chromium on a fresh profile directory, removed again on close. */
export async function launchChromium(): Promise<Chromium> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the browser tests need Debian's Chromium (apt-get install -y chromium; .ci/run installs it), or CHROMIUM_PATH`,
    );
  }
  const profile = mkdtempSync(join(tmpdir(), 'session-chromium-'));
  // launchPersistentContext would own the profile; a plain launch with the flags keeps contexts separate.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, `--disk-cache-dir=${join(profile, 'cache')}`],
    env: { ...process.env, HOME: profile },
  });
  return {
    browser,
    context: () => browser.newContext({ ignoreHTTPSErrors: true }),
    async close() {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

let certificate: { key: Buffer; cert: Buffer } | undefined;

/** A self-signed certificate for the test names, made with openssl once per test file. */
export function selfSigned(): { key: Buffer; cert: Buffer } {
  if (certificate) return certificate;
  const dir = mkdtempSync(join(tmpdir(), 'session-tls-'));
  const run = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=example.test',
      '-addext',
      'subjectAltName=DNS:*.example.test,DNS:*.attacker.test,DNS:localhost',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { encoding: 'utf8' },
  );
  if (run.status !== 0) throw new Error(`openssl could not make a test certificate: ${run.error?.message ?? run.stderr}`);
  certificate = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  rmSync(dir, { recursive: true, force: true });
  return certificate;
}

export async function listen(server: Server | import('node:http').Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as AddressInfo).port;
}

export function close(server: Server | import('node:http').Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

export interface Seen {
  method: string;
  path: string;
  cookie: string | undefined;
  origin: string | undefined;
  fetchSite: string | undefined;
}

/**
 * TLS in front of an http server, as Cloud Run's front end is: Host kept, X-Forwarded-Proto:
 * https. `seen` records what reached the API (to show what a browser did send).
 */
export function httpsFront(targetPort: number, seen: Seen[] = []): Server {
  return createHttpsServer(selfSigned(), (req, res) => {
    seen.push({
      method: req.method ?? '',
      path: req.url ?? '',
      cookie: req.headers.cookie,
      origin: req.headers.origin,
      fetchSite: req.headers['sec-fetch-site'],
    });
    forward(req, res, `http://127.0.0.1:${targetPort}`, { 'x-forwarded-proto': 'https', host: req.headers.host ?? '' });
  });
}

/**
 * A site serving fixed pages (path → HTML) and the built browser client at /client/sessionClient.mjs.
 * `handle` may answer other requests (a backend route); it returns false to fall through to 404.
 */
export function site(
  pages: Record<string, string>,
  handle?: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => boolean,
): Server {
  const client = join(ROOT, 'dist', 'client', 'sessionClient.mjs');
  if (!existsSync(client)) throw new Error('dist/client/sessionClient.mjs is missing: npm test builds it first (npm run build)');
  return createHttpsServer(selfSigned(), (req, res) => {
    const path = new URL(req.url ?? '/', 'https://site').pathname;
    if (path === '/client/sessionClient.mjs') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      res.end(readFileSync(client));
    } else if (pages[path] !== undefined) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(pages[path]);
    } else if (!handle?.(req, res)) {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
    }
  });
}
