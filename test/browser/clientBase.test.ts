/// <reference lib="dom" />
/**
 * The browser client on pages that are not at `/` (issue 24): `new SessionClient()` talks to the
 * page's origin whatever the page's path (/mine.html, /app/page.html), an explicit `baseUrl` keeps
 * its path (an API mounted under /api); and the `sessionended` event, fired when the session ends
 * underneath the page (a logout in another tab, a kill, a 409 `session_ended`) and never for the
 * page's own logout, reset or login. One origin serves the pages and forwards `/session` (and
 * `/api/session`) to the API, as a Hosting rewrite would.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BrowserContext, Page } from 'playwright-core';
import type { SessionClient } from '../../client/sessionClient.mjs';
import { forward } from '../../scripts/demoServer';
import { setLogSink } from '../../lib/setup/log';
import { AUDIENCE } from '../support/api';
import { close, launchChromium, listen, site, type Chromium } from './support/browser';
import { startDeployment, type Deployment } from './support/deployment';

jest.setTimeout(120_000);

interface Seen {
  reason: string;
  previousUser: string | null;
  user: string | null;
}
type PageWindow = Window & { client: SessionClient; events: Seen[]; SessionClient: typeof SessionClient };

/** A page whose client is built with these options (JSON), recording every sessionended event. */
const PAGE = (options: object = {}) => `<!doctype html><meta charset="utf-8"><title>page</title>
<script type="module">
import { SessionClient } from '/client/sessionClient.mjs';
window.SessionClient = SessionClient;
window.client = new SessionClient(${JSON.stringify(options)});
window.events = [];
window.client.addEventListener('sessionended', (e) => {
  const shown = (u) => (u === undefined ? '(none)' : u);
  window.events.push({ reason: e.reason, previousUser: shown(e.previousUser), user: shown(e.user) });
});
window.ready = true;
</script>`;

let chromium: Chromium;
let deployment: Deployment;
let origin: string;
let server: import('node:https').Server;
/** The paths of the requests that reached the site (pages and the browser's favicon request excluded). */
const paths: string[] = [];

beforeAll(async () => {
  setLogSink(() => undefined);
  [chromium, deployment] = await Promise.all([launchChromium(), startDeployment()]);
  const api = `http://127.0.0.1:${(deployment.api.server.address() as AddressInfo).port}`;
  const rewrite = (req: IncomingMessage, res: ServerResponse): boolean => {
    const path = new URL(req.url ?? '/', 'https://site').pathname;
    if (path !== '/favicon.ico') paths.push(path);
    const add = { 'x-forwarded-proto': 'https', host: req.headers.host ?? '' };
    if (path === '/session' || path.startsWith('/session/')) forward(req, res, api, add);
    else if (path === '/api/session' || path.startsWith('/api/session/')) forward(req, res, api, add, req.url!.slice('/api'.length));
    // The app's backend: logs the browser's session in with the admin token (a real one checks who the user is first).
    else if (path === '/backend/login' && req.method === 'POST')
      forward(req, res, api, { ...add, authorization: `Bearer ${deployment.api.admin.mint(AUDIENCE)}` }, '/session/login');
    else return false;
    return true;
  };
  server = site(
    {
      '/': PAGE(),
      '/mine.html': PAGE(),
      '/app/page.html': PAGE(),
      '/app/prefixed.html': PAGE({ baseUrl: '/api' }),
    },
    rewrite,
  );
  origin = `https://www.example.test:${await listen(server)}`;
});
afterAll(async () => {
  setLogSink(null);
  await Promise.all([chromium?.close(), deployment?.stop(), server && close(server)]);
});
beforeEach(() => {
  deployment.configure();
  paths.length = 0;
});

async function open(path: string, context?: BrowserContext): Promise<Page> {
  const page = await (context ?? (await chromium.context())).newPage();
  await page.goto(`${origin}${path}`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  return page;
}

const events = (page: Page) => page.evaluate(() => (window as unknown as PageWindow).events);

describe('the default base is the page’s origin, whatever the page’s path', () => {
  test.each(['/', '/mine.html', '/app/page.html'])('a page at %s reads, writes and fetches keys under /session', async (path) => {
    const page = await open(path);
    const result = await page.evaluate(async () => {
      const { client } = window as unknown as PageWindow;
      const before = await client.getSession();
      await client.set('language', 'de');
      const language = await client.get('language');
      return { baseUrl: client.baseUrl, before, language, after: await client.getSession() };
    });
    expect(result).toEqual({
      baseUrl: origin,
      before: { user: null, data: {} },
      language: 'de',
      after: { user: null, data: { language: 'de' } },
    });
    expect(paths.length).toBeGreaterThanOrEqual(4);
    for (const p of paths) expect(p).toMatch(/^\/session(\/|$)/);
    await page.context().close();
  });

  test('an explicit baseUrl keeps its path: /api (relative to the page) sends every request to /api/session/…', async () => {
    const page = await open('/app/prefixed.html');
    const result = await page.evaluate(async () => {
      const { client } = window as unknown as PageWindow;
      await client.merge({ theme: 'dark' });
      return { baseUrl: client.baseUrl, view: await client.getSession(), removed: await client.delete('theme') };
    });
    expect(result).toEqual({ baseUrl: `${origin}/api`, view: { user: null, data: { theme: 'dark' } }, removed: true });
    expect(paths.length).toBeGreaterThanOrEqual(4);
    for (const p of paths) expect(p).toMatch(/^\/api\/session(\/|$)/);
    await page.context().close();
  });

  test('an absolute baseUrl with a path and a trailing slash: the path is kept, the slash dropped', async () => {
    const page = await open('/mine.html');
    const result = await page.evaluate(async (base) => {
      const client = new (window as unknown as PageWindow).SessionClient({ baseUrl: base });
      await client.set('a', 1);
      return { baseUrl: client.baseUrl, value: await client.get('a') };
    }, `${origin}/api/`);
    expect(result).toEqual({ baseUrl: `${origin}/api`, value: 1 });
    for (const p of paths) expect(p).toMatch(/^\/api\/session(\/|$)/);
    await page.context().close();
  });
});

describe('sessionended', () => {
  async function login(page: Page, user: string): Promise<unknown> {
    return page.evaluate(
      (u) => (window as unknown as PageWindow).client.request('POST', '/backend/login', { body: { user: u }, replacesSession: true }),
      user,
    );
  }
  const read = (page: Page) => page.evaluate(() => (window as unknown as PageWindow).client.getSession());

  test('a logout in another tab: the next read shows no user and fires user_changed once; the page’s own login, logout and reset never fire it', async () => {
    const context = await chromium.context();
    const page = await open('/app/page.html', context);
    expect(await read(page)).toEqual({ user: null, data: {} });
    expect(await login(page, 'alice')).toEqual({ user: 'alice', data: {} });
    await page.evaluate(() => (window as unknown as PageWindow).client.set('cart', [1]));
    expect(await read(page)).toEqual({ user: 'alice', data: { cart: [1] } });

    const other = await open('/mine.html', context);
    expect(await read(other)).toEqual({ user: 'alice', data: { cart: [1] } });
    await other.evaluate(() => (window as unknown as PageWindow).client.logout());
    expect(await events(other)).toEqual([]);

    expect(await events(page)).toEqual([]);
    expect(await read(page)).toEqual({ user: null, data: {} });
    expect(await events(page)).toEqual([{ reason: 'user_changed', previousUser: 'alice', user: null }]);
    // The pooled keys belonged to the ended session: forgotten, and the next write fetches fresh ones.
    const after = await page.evaluate(async () => {
      const { client } = window as unknown as PageWindow;
      const pooled = client.pooledKeys;
      await client.set('again', true);
      await client.reset();
      await client.logout();
      return { pooled, view: await client.getSession() };
    });
    expect(after).toEqual({ pooled: 0, view: { user: null, data: {} } });
    expect(await events(page)).toHaveLength(1);
    await context.close();
  });

  test('a kill of the user’s sessions, and a login in another tab: each fires user_changed with both users', async () => {
    const context = await chromium.context();
    const page = await open('/', context);
    await login(page, 'bob');
    expect(await read(page)).toEqual({ user: 'bob', data: {} });
    const { sessions } = deployment.api.runtime;
    await sessions.store.endSessions((await sessions.liveSessions('bob')).map((s) => s.key));
    expect(await read(page)).toEqual({ user: null, data: {} });

    const other = await open('/app/page.html', context);
    await login(other, 'carol');
    expect(await read(page)).toEqual({ user: 'carol', data: {} });
    expect(await events(page)).toEqual([
      { reason: 'user_changed', previousUser: 'bob', user: null },
      { reason: 'user_changed', previousUser: null, user: 'carol' },
    ]);
    expect(await events(other)).toEqual([]);
    await context.close();
  });

  test('a 409 session_ended (the cookie names a session logged out moments ago) fires session_ended; the call still rejects', async () => {
    const context = await chromium.context();
    const page = await open('/mine.html', context);
    await login(page, 'dave');
    expect(await read(page)).toEqual({ user: 'dave', data: {} });
    const [before] = (await context.cookies(origin)).filter((c) => c.name === deployment.cookieName());
    const other = await open('/', context);
    await other.evaluate(() => (window as unknown as PageWindow).client.logout());
    // A request that left with the old cookie before the logout's answer arrived: the old cookie back in the jar.
    await context.addCookies([{ ...before }]);
    const failed = await page.evaluate(async () => {
      try {
        await (window as unknown as PageWindow).client.getSession();
        return null;
      } catch (err) {
        const { status, code } = err as { status: number; code: string };
        return { status, code };
      }
    });
    expect(failed).toEqual({ status: 409, code: 'session_ended' });
    expect(await events(page)).toEqual([{ reason: 'session_ended', previousUser: 'dave', user: '(none)' }]);
    await context.close();
  });
});
