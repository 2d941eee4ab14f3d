/// <reference lib="dom" />
/**
 * The cross-origin, same-site deployment in a real Chromium: a page on https://www.example.test
 * whose origin is in SESSION_ALLOWED_ORIGINS, the API on https://sessions.example.test, the browser
 * client with credentials. And a page on an origin that is not listed, which must get nothing.
 */
import type { Page } from 'playwright-core';
import type { SessionClient } from '../../client/sessionClient.mjs';
import { setLogSink } from '../../lib/setup/log';
import { launchChromium, type Chromium } from './support/browser';
import { PAGE, startDeployment, type Deployment } from './support/deployment';
import { close, listen, site } from './support/browser';

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
beforeEach(() => deployment.configure());

async function openPage(origin = deployment.pageOrigin): Promise<Page> {
  const context = await chromium.context();
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  return page;
}

async function sessionCookie(page: Page) {
  const cookies = await page.context().cookies(deployment.apiOrigin);
  return cookies.find((c) => c.name === deployment.cookieName());
}

test("reads and writes with the client: the cookie is the API host's, HttpOnly, Secure, SameSite=Lax", async () => {
  const page = await openPage();
  const result = await page.evaluate(async () => {
    const { client } = window as unknown as PageWindow;
    const before = await client.getSession();
    await client.set('language', 'de');
    await client.merge({ theme: 'dark', n: 1 });
    const language = await client.get('language');
    const removed = await client.delete('theme');
    const missing = await client.get('theme');
    return { before, language, removed, missing, after: await client.getSession(), cookieVisible: document.cookie };
  });
  expect(result).toEqual({
    before: { user: null, data: {} },
    language: 'de',
    removed: true,
    missing: undefined,
    after: { user: null, data: { language: 'de', n: 1 } },
    cookieVisible: '',
  });
  const cookie = await sessionCookie(page);
  expect(cookie).toMatchObject({ domain: 'sessions.example.test', path: '/', httpOnly: true, secure: true, sameSite: 'Lax', expires: -1 });
  await page.context().close();
});

test('with plain fetch: keys, the rotated key and the static key are readable and usable cross-origin; a spent key is refused', async () => {
  const page = await openPage();
  const result = await page.evaluate(async () => {
    const { api } = window as unknown as PageWindow;
    const put = (key: string, header: string, value: unknown) =>
      fetch(`${api}/session/data/k`, {
        method: 'PUT',
        credentials: 'include',
        headers: { 'Content-Type': 'application/json', [header]: key },
        body: JSON.stringify(value),
      });
    const first = await fetch(`${api}/session/security-key`, { credentials: 'include' });
    const staticKey = first.headers.get('Sec-X-ViUR-StaticSKey');
    const { securityKey } = (await first.json()) as { securityKey: string };
    const one = await put(securityKey, 'X-Security-Key', 1);
    const rotated = one.headers.get('X-Security-Key');
    const two = await put(rotated ?? '', 'X-Security-Key', 2);
    const spent = await put(securityKey, 'X-Security-Key', 3);
    const spentBody = (await spent.json()) as unknown;
    const viaStatic = await put(staticKey ?? '', 'X-Static-Security-Key', 4);
    const read = (await (await fetch(`${api}/session/data/k`, { credentials: 'include' })).json()) as unknown;
    return {
      staticKey: typeof staticKey,
      one: one.status,
      rotated: typeof rotated,
      two: two.status,
      spent: spent.status,
      spentBody,
      viaStatic: viaStatic.status,
      read,
    };
  });
  expect(result).toEqual({
    staticKey: 'string',
    one: 200,
    rotated: 'string',
    two: 200,
    spent: 403,
    spentBody: { error: { code: 'csrf', message: expect.any(String) } },
    viaStatic: 200,
    read: { key: 'k', value: 4 },
  });
  // Every PUT was preceded by a preflight the API answered.
  expect(deployment.seen.filter((s) => s.method === 'OPTIONS' && s.path === '/session/data/k').length).toBeGreaterThanOrEqual(1);
  await page.context().close();
});

test('parallel writes: 10 raw PUTs with keys of one ?count=10 request, and 24 through the client, all succeed', async () => {
  const page = await openPage();
  const seenFrom = deployment.seen.length;
  const result = await page.evaluate(async () => {
    const { api, client } = window as unknown as PageWindow;
    const keys = (
      (await (await fetch(`${api}/session/security-key?count=10`, { credentials: 'include' })).json()) as { securityKeys: string[] }
    ).securityKeys;
    const raw = await Promise.all(
      keys.map((key, i) =>
        fetch(`${api}/session/data/raw${i}`, {
          method: 'PUT',
          credentials: 'include',
          headers: { 'Content-Type': 'application/json', 'X-Security-Key': key },
          body: String(i),
        }).then((r) => r.status),
      ),
    );
    const viaClient = await Promise.allSettled(Array.from({ length: 24 }, (_, i) => client.set(`c${i}`, i)));
    const data = (await client.getSession()).data;
    return {
      raw,
      rejected: viaClient.filter((r) => r.status === 'rejected').map((r) => String(r.reason)),
      count: Object.keys(data).length,
    };
  });
  expect(result).toEqual({ raw: Array(10).fill(200), rejected: [], count: 34 });
  // The client's 24 writes cost one key request (16 keys; the other 8 writes wait for rotated keys), and no retry.
  const keyRequests = deployment.seen.slice(seenFrom).filter((s) => s.method === 'GET' && s.path.startsWith('/session/security-key'));
  expect(keyRequests.map((s) => s.path)).toEqual(['/session/security-key?count=10', '/session/security-key?count=16']);
  expect(deployment.seen.slice(seenFrom).filter((s) => s.method === 'PUT').length).toBe(34);
  await page.context().close();
});

test('the client retries once with a fresh key when its pooled keys were evicted (another tab fetching 16)', async () => {
  const page = await openPage();
  const result = await page.evaluate(async () => {
    const { api, client } = window as unknown as PageWindow;
    await client.set('a', 1); // the pool now holds keys
    await fetch(`${api}/session/security-key?count=16`, { credentials: 'include' }); // evicts them all
    await client.set('b', 2);
    return (await client.getSession()).data;
  });
  expect(result).toEqual({ a: 1, b: 2 });
  const csrf = deployment.seen.filter((s) => s.method === 'PUT' && s.path === '/session/data/b');
  expect(csrf.length).toBe(2); // the refused attempt and the retry
  await page.context().close();
});

test("the body layer's refusals (bad JSON, a charset other than UTF-8) are readable JSON errors cross-origin, not network errors (issue 26, finding 9)", async () => {
  const page = await openPage();
  const result = await page.evaluate(async () => {
    const { api } = window as unknown as PageWindow;
    const put = async (contentType: string, body: string) => {
      try {
        const r = await fetch(`${api}/session/data/k`, {
          method: 'PUT',
          credentials: 'include',
          headers: { 'Content-Type': contentType, 'X-Security-Key': 'any' },
          body,
        });
        return { status: r.status, body: (await r.json()) as unknown, cacheControl: r.headers.get('Cache-Control') };
      } catch (err) {
        return { failed: String(err) };
      }
    };
    return [await put('application/json', '{"'), await put('application/json; charset=latin1', '1')];
  });
  expect(result).toEqual([
    { status: 400, body: { error: { code: 'bad_json', message: expect.any(String) } }, cacheControl: 'no-store' },
    { status: 415, body: { error: { code: 'unsupported_media_type', message: expect.any(String) } }, cacheControl: 'no-store' },
  ]);
  await page.context().close();
});

describe('an origin that is not in SESSION_ALLOWED_ORIGINS', () => {
  let other: import('node:https').Server;
  let otherOrigin: string;
  beforeAll(async () => {
    other = site({ '/': PAGE(deployment.apiOrigin) });
    otherOrigin = `https://other.example.test:${await listen(other)}`;
  });
  afterAll(() => close(other));

  test('cannot read any answer, and its writes never leave the browser (the preflight gets no CORS headers)', async () => {
    // A session of this browser, started by the allowed page, which the other page then targets.
    const page = await openPage();
    await page.evaluate(async () => (window as unknown as PageWindow).client.set('language', 'de'));
    const cookie = await sessionCookie(page);
    const before = await deployment.stored(cookie!.value);
    const seenBefore = deployment.seen.length;
    const attacker = await page.context().newPage();
    await attacker.goto(`${otherOrigin}/`);
    await attacker.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    const outcome = await attacker.evaluate(async () => {
      const { api, client } = window as unknown as PageWindow;
      const attempt = (p: Promise<unknown>) =>
        p.then(
          () => 'read',
          (e: unknown) => (e instanceof TypeError ? 'blocked' : `other: ${String(e)}`),
        );
      return {
        read: await attempt(fetch(`${api}/session`, { credentials: 'include' }).then((r) => r.json())),
        keys: await attempt(fetch(`${api}/session/security-key?count=16`, { credentials: 'include' }).then((r) => r.json())),
        put: await attempt(
          fetch(`${api}/session/data/language`, {
            method: 'PUT',
            credentials: 'include',
            headers: { 'Content-Type': 'application/json', 'X-Security-Key': 'x' },
            body: '"en"',
          }),
        ),
        client: await attempt(client.set('language', 'en')),
      };
    });
    expect(outcome).toEqual({ read: 'blocked', keys: 'blocked', put: 'blocked', client: 'blocked' });
    const reached = deployment.seen.slice(seenBefore).map((s) => `${s.method} ${s.path}`);
    expect(reached.filter((r) => r.startsWith('PUT'))).toEqual([]);
    expect(reached).toContain('OPTIONS /session/data/language');
    expect(await deployment.stored(cookie!.value)).toEqual(before);
    await page.context().close();
  });
});
