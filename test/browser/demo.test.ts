/// <reference lib="dom" />
/**
 * The demo page of `npm start`, as a newcomer uses it: the launcher prints its address; the page
 * shows the session, writes values, fetches a key, logs in (through the demo's backend route with
 * the local admin token) and out, lists the user's devices and signs them out (the device signed
 * out shows "you were signed out" on its next read), all through the browser client on the page's
 * own origin.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { freePort } from '../../scripts/emulators';
import { ROOT } from '../support/functionsFramework';
import { launchChromium, type Chromium } from './support/browser';

jest.setTimeout(120_000);

const START = join(ROOT, 'dist', 'scripts', 'start.js');
let chromium: Chromium;
let launcher: ChildProcess;
let output = '';
let demoUrl: string;

beforeAll(async () => {
  if (!existsSync(START)) throw new Error('dist/ is missing: npm test builds it first (npm run build)');
  const env = { ...process.env };
  for (const name of ['DATASTORE_EMULATOR_HOST', 'PUBSUB_EMULATOR_HOST', 'GOOGLE_CLOUD_PROJECT', 'SESSION_NAMESPACE']) delete env[name];
  const ports = [await freePort(), await freePort(), await freePort()];
  launcher = spawn(
    process.execPath,
    [
      START,
      '--port',
      `${ports[0]}`,
      '--kill-port',
      `${ports[1]}`,
      '--cleanup-port',
      `${ports[2]}`,
      '--demo-port',
      `${await freePort()}`,
      '--state-dir',
      mkdtempSync(join(tmpdir(), 'demo-')),
    ],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  );
  launcher.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  launcher.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  const browser = launchChromium();
  const deadline = Date.now() + 30_000;
  while (!/ADMIN_TOKEN=\S+/.test(output)) {
    if (launcher.exitCode !== null || Date.now() > deadline) throw new Error(`launcher did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  demoUrl = /demo page\s+(http:\/\/localhost:\d+)/.exec(output)![1]!;
  chromium = await browser;
});
afterAll(async () => {
  await chromium?.close();
  if (launcher?.exitCode === null) {
    const exited = new Promise((r) => launcher.once('exit', r));
    process.kill(-launcher.pid!, 'SIGINT');
    await exited;
  }
});

const shown = async (page: Page) => JSON.parse((await page.textContent('#session')) ?? 'null') as unknown;

async function act(page: Page, click: string, status: string): Promise<void> {
  await page.click(click);
  await page.waitForFunction((s) => document.getElementById('status')?.textContent === s, status);
}

/** Another browser (its own cookie jar) on the demo page, signed in as `user` through the page. */
async function signedIn(user: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.context();
  const page = await context.newPage();
  await page.goto(demoUrl);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
  await page.fill('#user', user);
  await act(page, '#login-button', `logged in as ${user}`);
  return { context, page };
}

test('the launcher prints the demo address; the page shows, writes, fetches a key, logs in and out', async () => {
  expect(demoUrl).toMatch(/^http:\/\/localhost:\d+$/);
  const context = await chromium.context();
  const page = await context.newPage();
  await page.goto(demoUrl);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
  expect(await shown(page)).toEqual({ user: null, data: {} });

  await page.fill('#key', 'language');
  await page.fill('#value', '"de"');
  await act(page, '#save', 'saved language');
  await page.fill('#key', 'cart');
  await page.fill('#value', '[1, 2, 3]');
  await act(page, '#save', 'saved cart');
  expect(await shown(page)).toEqual({ user: null, data: { language: 'de', cart: [1, 2, 3] } });
  const [cookie] = await context.cookies(demoUrl);
  expect(cookie).toMatchObject({ domain: 'localhost', httpOnly: true, secure: true, sameSite: 'Lax', path: '/' });

  await act(page, '#fetch-key', 'fetched a key');
  expect(await page.textContent('#one-time-key')).toMatch(/^[A-Za-z0-9_-]{43}$/);

  await page.fill('#user', 'alice');
  await act(page, '#login-button', 'logged in as alice');
  expect(await shown(page)).toEqual({ user: 'alice', data: { language: 'de' } });
  const [afterLogin] = await context.cookies(demoUrl);
  expect(afterLogin.value).not.toBe(cookie.value);

  await page.fill('#key', 'theme');
  await page.fill('#value', 'dark');
  await act(page, '#save', 'saved theme');
  expect(await shown(page)).toEqual({ user: 'alice', data: { language: 'de', theme: 'dark' } });

  // A second browser signs in as the same user: the first lists it and signs it out.
  const devices = async (p: Page) => p.$$eval('#devices li', (items) => items.map((li) => li.textContent ?? ''));
  expect(await devices(page)).toEqual([expect.stringContaining('this device')]);
  const { context: other, page: second } = await signedIn('alice');
  await page.reload();
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
  expect(await devices(page)).toEqual([expect.stringContaining('Sign out'), expect.stringContaining('this device')]);
  await act(page, '.end-device', 'signed out that device');
  expect(await devices(page)).toEqual([expect.stringContaining('this device')]);
  // The signed-out browser is told on its next read (the client's sessionended event), not left to
  // write into a fresh guest session unawares.
  await act(second, '#refresh', 'reloaded');
  expect(await second.textContent('#signed-out')).toBe('You were signed out (as alice) in another tab or on another device.');
  expect(await second.isVisible('#signed-out')).toBe(true);
  expect(await shown(second)).toEqual({ user: null, data: {} });
  expect(await page.isVisible('#signed-out')).toBe(false);
  await second.reload();
  await second.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
  expect(await shown(second)).toEqual({ user: null, data: {} });
  // And all at once: two more browsers, one button.
  const contexts = [other, (await signedIn('alice')).context, (await signedIn('alice')).context];
  await page.reload();
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
  expect(await devices(page)).toHaveLength(3);
  await act(page, '#logout-others', 'signed out everywhere else');
  expect(await devices(page)).toEqual([expect.stringContaining('this device')]);
  expect(await shown(page)).toMatchObject({ user: 'alice' });
  for (const c of contexts) await c.close();

  await act(page, '#logout', 'logged out');
  expect(await shown(page)).toEqual({ user: null, data: { language: 'de' } });
  await page.fill('#key', 'nope');
  await act(page, '#remove', 'deleted nope failed: no such key');
  await context.close();
});
