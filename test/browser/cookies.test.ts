/// <reference lib="dom" />
/**
 * The session cookie as Chromium stores it, for each SESSION_SAME_SITE, persistent and __Host-
 * names; a stale cookie being removed; and the same-origin deployment (a Hosting-style rewrite:
 * the demo server over https) with a login relayed by a backend.
 */
import type { BrowserContext, Page } from 'playwright-core';
import type { SessionClient } from '../../client/sessionClient.mjs';
import { createDemoServer } from '../../scripts/demoServer';
import { setLogSink } from '../../lib/setup/log';
import { AUDIENCE } from '../support/api';
import { close, launchChromium, listen, selfSigned, type Chromium } from './support/browser';
import { startDeployment, type Deployment } from './support/deployment';

jest.setTimeout(120_000);

type PageWindow = Window & { client: SessionClient; api: string };

let chromium: Chromium;
let deployment: Deployment;

beforeAll(async () => {
  setLogSink(() => undefined);
  [chromium, deployment] = await Promise.all([launchChromium(), startDeployment()]);
});
afterAll(async () => {
  setLogSink(null);
  await Promise.all([chromium?.close(), deployment?.stop()]);
});

async function openPage(url: string): Promise<Page> {
  const context = await chromium.context();
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  return page;
}

async function cookiesOf(context: BrowserContext, origin: string) {
  return (await context.cookies(origin)).map(({ name, value, domain, path, expires, httpOnly, secure, sameSite }) => ({
    name,
    value,
    domain,
    path,
    expires,
    httpOnly,
    secure,
    sameSite,
  }));
}

describe('the cookie as Chromium stores it', () => {
  test.each([
    ['lax', 'Lax'],
    ['strict', 'Strict'],
    ['none', 'None'],
  ])(
    'SESSION_SAME_SITE=%s: host-only, Path=/, HttpOnly, Secure, SameSite=%s, a browser-session cookie; sent back on the next change',
    async (setting, stored) => {
      deployment.configure({ SESSION_SAME_SITE: setting });
      const page = await openPage(`${deployment.pageOrigin}/`);
      const data = await page.evaluate(async () => {
        const { client } = window as unknown as PageWindow;
        await client.set('a', 1);
        await client.set('b', 2);
        return (await client.getSession()).data;
      });
      expect(data).toEqual({ a: 1, b: 2 });
      expect(await cookiesOf(page.context(), deployment.apiOrigin)).toEqual([
        {
          name: deployment.cookieName(),
          value: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
          domain: 'sessions.example.test',
          path: '/',
          expires: -1,
          httpOnly: true,
          secure: true,
          sameSite: stored,
        },
      ]);
      await page.context().close();
    },
  );

  test('SESSION_SAME_SITE=off: no attribute, which Chromium treats as Lax', async () => {
    deployment.configure({ SESSION_SAME_SITE: 'off' });
    const page = await openPage(`${deployment.pageOrigin}/`);
    await page.evaluate(async () => (window as unknown as PageWindow).client.set('a', 1));
    const [cookie] = await cookiesOf(page.context(), deployment.apiOrigin);
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, path: '/', expires: -1 });
    expect(['Lax', undefined]).toContain(cookie.sameSite);
    await page.context().close();
  });

  test('SESSION_COOKIE_PERSISTENT=true: the cookie expires after the lifetime', async () => {
    deployment.configure({ SESSION_COOKIE_PERSISTENT: 'true', SESSION_LIFETIME_SECONDS: '7200' });
    const page = await openPage(`${deployment.pageOrigin}/`);
    await page.evaluate(async () => (window as unknown as PageWindow).client.set('a', 1));
    const [cookie] = await cookiesOf(page.context(), deployment.apiOrigin);
    const now = Date.now() / 1000;
    expect(cookie.expires).toBeGreaterThan(now + 7200 - 120);
    expect(cookie.expires).toBeLessThan(now + 7200 + 120);
    await page.context().close();
  });

  test('a __Host- name is accepted by Chromium (Secure, Path=/, no Domain) and works', async () => {
    deployment.configure({ SESSION_COOKIE_NAME: '__Host-sid' });
    const page = await openPage(`${deployment.pageOrigin}/`);
    const data = await page.evaluate(async () => {
      const { client } = window as unknown as PageWindow;
      await client.set('a', 1);
      await client.merge({ b: 2 });
      return (await client.getSession()).data;
    });
    expect(data).toEqual({ a: 1, b: 2 });
    expect(await cookiesOf(page.context(), deployment.apiOrigin)).toEqual([
      expect.objectContaining({ name: '__Host-sid', domain: 'sessions.example.test', path: '/', secure: true, httpOnly: true }),
    ]);
    await page.context().close();
  });

  test('a cookie naming a session that no longer exists is removed from the browser', async () => {
    deployment.configure();
    const page = await openPage(`${deployment.pageOrigin}/`);
    await page.evaluate(async () => (window as unknown as PageWindow).client.set('a', 1));
    const [cookie] = await cookiesOf(page.context(), deployment.apiOrigin);
    const { digest } = await import('../../lib/core/ids');
    await deployment.api.store.deleteMany([digest(cookie.value)]);
    const view = await page.evaluate(async () => (window as unknown as PageWindow).client.getSession());
    expect(view).toEqual({ user: null, data: {} });
    expect(await cookiesOf(page.context(), deployment.apiOrigin)).toEqual([]);
    await page.context().close();
  });
});

describe('the same-origin deployment (a Hosting-style rewrite) with a login relayed by a backend', () => {
  let demo: import('node:http').Server;
  let origin: string;
  beforeAll(async () => {
    const apiPort = (deployment.api.server.address() as import('node:net').AddressInfo).port;
    demo = createDemoServer({
      apiUrl: `http://127.0.0.1:${apiPort}`,
      adminToken: () => deployment.api.admin.mint(AUDIENCE),
      tls: selfSigned(),
      hosts: ['www.example.test'],
    });
    origin = `https://www.example.test:${await listen(demo)}`;
  });
  afterAll(() => close(demo));

  test('the page writes, its backend logs the session in (persistent fields kept), the client goes on, then logs out', async () => {
    deployment.configure({ SESSION_ALLOWED_ORIGINS: '' });
    const context = await chromium.context();
    const page = await context.newPage();
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
    const steps = await page.evaluate(async () => {
      const { client } = window as unknown as PageWindow;
      await client.set('language', 'de');
      await client.set('cart', [1, 2]);
      const login = await client.request('POST', '/demo/login', { body: { user: 'alice' }, replacesSession: true });
      const staticKey = client.staticSecurityKey;
      await client.set('theme', 'dark');
      const devices = (await client.devices()).map((d) => d.current);
      const others = await client.logoutOthers();
      const loggedIn = await client.getSession();
      const out = await client.logout();
      await client.set('after', true);
      return { login, staticKey: typeof staticKey, devices, others, loggedIn, out, final: await client.getSession() };
    });
    expect(steps).toEqual({
      login: { user: 'alice', data: { language: 'de' } },
      staticKey: 'string',
      devices: [true],
      others: 0,
      loggedIn: { user: 'alice', data: { language: 'de', theme: 'dark' } },
      out: { user: null, data: { language: 'de' } },
      final: { user: null, data: { language: 'de', after: true } },
    });
    const cookies = await cookiesOf(context, origin);
    expect(cookies).toEqual([
      expect.objectContaining({ name: deployment.cookieName(), domain: 'www.example.test', httpOnly: true, secure: true, sameSite: 'Lax' }),
    ]);
    await context.close();
  });
});
