/// <reference lib="dom" />
/**
 * An attacker site (https://evil.attacker.test, another site) against a victim's session, in a real
 * Chromium: form POSTs, no-cors and credentialed fetches, images, and top-level links to every
 * route. The victim's stored session (data and held one-time keys) must come out unchanged, and
 * every key the victim holds must still work. Run with SameSite=Lax (the default: Lax cookies
 * travel with top-level links) and SameSite=None (cookies travel with everything, so only the
 * server's cross-site refusal protects the session).
 */
import type { Page } from 'playwright-core';

jest.setTimeout(180_000);
import { setLogSink } from '../../lib/setup/log';
import { close, launchChromium, listen, site, type Chromium } from './support/browser';
import { startDeployment, type Deployment } from './support/deployment';

let chromium: Chromium;
let deployment: Deployment;
let evil: import('node:https').Server;
let evilOrigin: string;
/** A sibling subdomain of the victim's site: another origin, the same site (issue 26, finding 7). */
let sibling: import('node:https').Server;
let siblingOrigin: string;

beforeAll(async () => {
  setLogSink(() => undefined);
  [chromium, deployment] = await Promise.all([launchChromium(), startDeployment()]);
  evil = site({ '/': '<!doctype html><meta charset="utf-8"><title>cute cats</title><p>cats</p>' });
  evilOrigin = `https://evil.attacker.test:${await listen(evil)}`;
  sibling = site({ '/': '<!doctype html><meta charset="utf-8"><title>blog</title><p>posts</p>' });
  siblingOrigin = `https://blog.example.test:${await listen(sibling)}`;
});
afterAll(async () => {
  setLogSink(null);
  await Promise.all([chromium?.close(), deployment?.stop(), evil && close(evil), sibling && close(sibling)]);
});

/** Every route, as a path a link, an image or a GET form can name. */
const GET_TARGETS = [
  '/session',
  '/session/data/language',
  '/session/security-key',
  '/session/security-key?count=16',
  '/session/reset',
  '/session/touch',
  '/session/logout',
  '/session/login',
  '/session/security-key/validate',
  '/session/static-security-key/validate',
  '/sessions/kill',
  '/healthz',
];
/** Every route a form or a no-cors fetch can POST to (PATCH, PUT and DELETE need CORS). */
const POST_TARGETS = GET_TARGETS.filter((p) => !p.includes('?'));
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

type Victim = { page: Page; cookie: string; keys: string[] };

async function victim(): Promise<Victim> {
  const context = await chromium.context();
  const page = await context.newPage();
  await page.goto(`${deployment.pageOrigin}/`);
  await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
  const keys = await page.evaluate(async () => {
    const api = (window as unknown as { api: string }).api;
    const first = await fetch(`${api}/session/security-key`, { credentials: 'include' });
    const { securityKey } = (await first.json()) as { securityKey: string };
    await fetch(`${api}/session/data/language`, {
      method: 'PUT',
      credentials: 'include',
      headers: { 'Content-Type': 'application/json', 'X-Security-Key': securityKey },
      body: '"de"',
    });
    const held = await fetch(`${api}/session/security-key?count=16`, { credentials: 'include' });
    return ((await held.json()) as { securityKeys: string[] }).securityKeys;
  });
  const cookie = (await context.cookies(deployment.apiOrigin)).find((c) => c.name === deployment.cookieName())!.value;
  return { page, cookie, keys };
}

/** The fetches and images, all at once, from the attacker's page. */
async function subresourceAttacks(attacker: Page, api: string): Promise<void> {
  await attacker.evaluate(
    async ({ api, gets, posts, methods }) => {
      const settle = (p: Promise<unknown>) =>
        p.then(
          () => undefined,
          () => undefined,
        );
      const noCors = [
        ...gets.map((p) => fetch(api + p, { mode: 'no-cors', credentials: 'include' })),
        ...posts.map((p) =>
          fetch(api + p, {
            method: 'POST',
            mode: 'no-cors',
            credentials: 'include',
            headers: { 'Content-Type': 'text/plain' },
            body: '{"key":"x","user":"mallory","a":1}',
          }),
        ),
      ];
      const credentialed = posts.flatMap((p) =>
        methods.map((method) =>
          fetch(api + p, {
            method,
            credentials: 'include',
            headers: { 'Content-Type': 'application/json', 'X-Security-Key': 'guess', 'X-Static-Security-Key': 'guess' },
            body: method === 'GET' ? undefined : '{"key":"x","a":1}',
          }),
        ),
      );
      const simple = gets.map((p) => fetch(api + p, { credentials: 'include' }));
      const images = gets.map(
        (p) =>
          new Promise<void>((resolve) => {
            const img = document.createElement('img');
            img.onload = img.onerror = () => resolve();
            img.src = api + p;
            document.body.append(img);
          }),
      );
      await Promise.all([...noCors, ...credentialed, ...simple, ...images].map(settle));
    },
    { api, gets: GET_TARGETS, posts: POST_TARGETS, methods: METHODS },
  );
}

/**
 * Forms submitted into hidden frames (third-party requests), all at once: urlencoded, text/plain (a JSON-looking body)
 * and multipart POSTs to every route, and a GET form asking for 16 keys.
 */
async function formAttacks(attacker: Page, api: string): Promise<void> {
  await attacker.evaluate(
    async ({ api, posts }) => {
      const forms: Array<{ method: string; action: string; enctype: string; name: string; value: string }> = [];
      for (const p of posts) {
        for (const enctype of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data']) {
          forms.push({ method: 'POST', action: api + p, enctype, name: '{"user":"mallory","key":"', value: 'x","a":1}' });
        }
      }
      forms.push({
        method: 'GET',
        action: `${api}/session/security-key`,
        enctype: 'application/x-www-form-urlencoded',
        name: 'count',
        value: '16',
      });
      await Promise.all(
        forms.map(
          (f, i) =>
            new Promise<void>((resolve) => {
              const frame = document.createElement('iframe');
              frame.name = `f${i}`;
              document.body.append(frame);
              const form = document.createElement('form');
              Object.assign(form, { method: f.method, action: f.action, enctype: f.enctype, target: frame.name });
              const input = document.createElement('input');
              Object.assign(input, { name: f.name, value: f.value });
              form.append(input);
              document.body.append(form);
              frame.onload = () => resolve();
              form.submit();
            }),
        ),
      );
    },
    { api, posts: POST_TARGETS },
  );
}

/**
 * The classic CSRF: a form on the attacker's page POSTing to each route as a top-level navigation
 * (first-party, so SameSite=None cookies travel even where third-party cookies are blocked).
 */
async function topLevelForms(attacker: Page, api: string): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {};
  for (const target of POST_TARGETS) {
    await attacker.goto(`${evilOrigin}/`);
    const [response] = await Promise.all([
      attacker.waitForResponse((r) => r.url().startsWith(api) && r.request().isNavigationRequest()),
      attacker.evaluate((action) => {
        const form = document.createElement('form');
        Object.assign(form, { method: 'POST', action, enctype: 'text/plain' });
        const input = document.createElement('input');
        Object.assign(input, { name: '{"user":"mallory","key":"', value: 'x","a":1}' });
        form.append(input);
        document.body.append(form);
        form.submit();
      }, api + target),
    ]);
    await attacker.waitForURL((url) => url.href.startsWith(api));
    statuses[target] = response.status();
  }
  return statuses;
}

/** Top-level links to every route, each clicked on the attacker's page. Returns path → status. */
async function linkAttacks(attacker: Page, api: string, from = evilOrigin): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {};
  for (const target of GET_TARGETS) {
    await attacker.goto(`${from}/`);
    await attacker.evaluate((href) => {
      const a = document.createElement('a');
      Object.assign(a, { href, id: 'cats', textContent: 'free cats' });
      document.body.append(a);
    }, api + target);
    const [response] = await Promise.all([
      attacker.waitForResponse((r) => r.url().startsWith(api) && r.request().isNavigationRequest()),
      attacker.click('#cats'),
    ]);
    await attacker.waitForURL((url) => url.href.startsWith(api));
    statuses[target] = response.status();
  }
  return statuses;
}

describe.each(['lax', 'none'])('SESSION_SAME_SITE=%s', (sameSite) => {
  beforeAll(() => deployment.configure({ SESSION_SAME_SITE: sameSite }));

  test('the attacker site changes nothing: session data and every held key survive', async () => {
    const { page, cookie, keys } = await victim();
    const before = await deployment.stored(cookie);
    expect(before?.securityKeyDigests).toHaveLength(16);
    const seenFrom = deployment.seen.length;
    const api = deployment.apiOrigin;
    const attacker = await page.context().newPage();
    await attacker.goto(`${evilOrigin}/`);
    await subresourceAttacks(attacker, api);

    await formAttacks(attacker, api);
    if (sameSite === 'none') {
      // Lax cookies never travel with a cross-site POST; None ones do, with a top-level one too.
      const formStatus = await topLevelForms(attacker, api);
      expect(formStatus['/session/reset']).toBe(403);
    }
    const linkStatus = await linkAttacks(attacker, api);
    expect(Object.keys(linkStatus).sort()).toEqual([...GET_TARGETS].sort());

    // Minting keys through a cross-site link or form is refused; reads answer the victim's own browser.
    expect(linkStatus['/session/security-key?count=16']).toBe(403);
    expect(linkStatus['/session/security-key']).toBe(403);
    // The requests did reach the API with the victim's cookie: Lax cookies on top-level links, None ones everywhere.
    const attacks = deployment.seen.slice(seenFrom);
    const withCookie = attacks.filter((s) => s.cookie?.includes(cookie) && s.fetchSite === 'cross-site');
    expect(withCookie.some((s) => s.path === '/session/security-key?count=16')).toBe(true);
    if (sameSite === 'none') expect(withCookie.some((s) => s.method === 'POST' && s.path === '/session/reset')).toBe(true);
    // No request the API received cross-site (with a non-simple method) came without a failed preflight before it.
    expect(attacks.filter((s) => ['PUT', 'PATCH', 'DELETE'].includes(s.method))).toEqual([]);

    expect(await deployment.stored(cookie)).toEqual(before);
    // Every one of the victim's 16 keys still works, once each.
    const statuses = await page.evaluate(async (keys) => {
      const api = (window as unknown as { api: string }).api;
      const out: number[] = [];
      for (const [i, key] of keys.entries()) {
        const r = await fetch(`${api}/session/data/v${i}`, {
          method: 'PUT',
          credentials: 'include',
          headers: { 'Content-Type': 'application/json', 'X-Security-Key': key },
          body: String(i),
        });
        out.push(r.status);
      }
      return out;
    }, keys);
    expect(statuses).toEqual(Array(16).fill(200));
    await page.context().close();
  });
});

describe('a sibling subdomain (same site, another origin: issue 26, finding 7)', () => {
  beforeAll(() => deployment.configure());

  test('its images, fetches and links change nothing: no key minted, every held key survives', async () => {
    const { page, cookie, keys } = await victim();
    const before = await deployment.stored(cookie);
    expect(before?.securityKeyDigests).toHaveLength(16);
    const seenFrom = deployment.seen.length;
    const api = deployment.apiOrigin;
    const attacker = await page.context().newPage();
    await attacker.goto(`${siblingOrigin}/`);
    await subresourceAttacks(attacker, api);
    const linkStatus = await linkAttacks(attacker, api, siblingOrigin);
    // The requests reached the API with the victim's cookie (Lax cookies travel same-site), marked same-site, without Origin.
    const attacks = deployment.seen.slice(seenFrom);
    const minting = attacks.filter((s) => s.path === '/session/security-key?count=16' && s.cookie?.includes(cookie));
    expect(minting.some((s) => s.fetchSite === 'same-site' && s.origin === undefined)).toBe(true);

    expect(await deployment.stored(cookie)).toEqual(before);
    const statuses = await page.evaluate(async (keys) => {
      const api = (window as unknown as { api: string }).api;
      const out: number[] = [];
      for (const [i, key] of keys.entries()) {
        const r = await fetch(`${api}/session/data/s${i}`, {
          method: 'PUT',
          credentials: 'include',
          headers: { 'Content-Type': 'application/json', 'X-Security-Key': key },
          body: String(i),
        });
        out.push(r.status);
      }
      return out;
    }, keys);
    expect(statuses).toEqual(Array(16).fill(200));
    expect([linkStatus['/session/security-key?count=16'], linkStatus['/session/security-key']]).toEqual([403, 403]);
    await page.context().close();
  });
});
