/**
 * The revocation bound (docs/guarantees.md#revocation-bound), measured on two sessionApi instances:
 * two functions-framework processes sharing one store (the Firestore emulator in Datastore mode),
 * and the kill function as a third. What is asserted is the bound's behaviour, not a time:
 *
 * - read cache off: once a logout on instance A or a kill has answered, instance B refuses the
 *   session on its very next read;
 * - read cache on: B may serve the ended session only from an entry it read before the end, never
 *   for a request that started later than that read plus SESSION_READ_CACHE_MS, and then refuses it
 *   for good; A, which ended it, refuses it at once.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalAdmin } from '../../scripts/localAdmin';
import { ADMIN_EMAIL, AUDIENCE } from '../support/api';
import { uniqueNamespace } from '../support/fixtures';
import { ensureBuilt, type FunctionProcess, startFunction } from '../support/functionsFramework';
import { eventually } from '../support/seed';

const CACHE_MS = 3000;
const processes: FunctionProcess[] = [];
const admin = createLocalAdmin(mkdtempSync(join(tmpdir(), 'revocation-admin-')), ADMIN_EMAIL);

interface Stack {
  a: FunctionProcess;
  b: FunctionProcess;
  kill: FunctionProcess;
}

async function stack(readCacheMs: number): Promise<Stack> {
  const env = {
    GOOGLE_CLOUD_PROJECT: 'session-test',
    SESSION_NAMESPACE: uniqueNamespace('revocation'),
    SESSION_READ_CACHE_MS: String(readCacheMs),
    SESSION_ADMIN_JWKS_FILE: admin.jwksFile,
    SESSION_ADMIN_PRINCIPALS: ADMIN_EMAIL,
    SESSION_ADMIN_AUDIENCE: AUDIENCE,
  };
  const [a, b, kill] = await Promise.all([
    startFunction('sessionApi', 'http', env),
    startFunction('sessionApi', 'http', env),
    startFunction('killSessionByUser', 'cloudevent', env),
  ]);
  processes.push(a, b, kill);
  return { a, b, kill };
}

beforeAll(() => ensureBuilt());

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
});

/** The user the session answers with on `fn` (null: refused, no live session), with when the request started and ended. */
async function read(fn: FunctionProcess, cookie: string): Promise<{ user: unknown; startedAt: number; endedAt: number }> {
  const startedAt = Date.now();
  const res = await fetch(`${fn.url}/session`, { headers: { cookie } });
  const body = (await res.json()) as { user?: unknown; error?: { code?: string } };
  // 409 session_ended: the read found the session ended (a tombstone) while refreshing it; a refusal too.
  if (res.status === 409 && body.error?.code === 'session_ended') return { user: null, startedAt, endedAt: Date.now() };
  if (res.status !== 200) throw new Error(`GET /session: ${res.status} ${JSON.stringify(body)}`);
  return { user: body.user ?? null, startedAt, endedAt: Date.now() };
}

async function login(fn: FunctionProcess, user: string): Promise<{ cookie: string; staticKey: string }> {
  const res = await fetch(`${fn.url}/session/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.mint(AUDIENCE)}` },
    body: JSON.stringify({ user }),
  });
  if (res.status !== 200) throw new Error(`login: ${res.status} ${await res.text()}`);
  return { cookie: res.headers.getSetCookie()[0].split(';')[0], staticKey: res.headers.get('sec-x-viur-staticskey')! };
}

async function logout(fn: FunctionProcess, session: { cookie: string; staticKey: string }): Promise<void> {
  const res = await fetch(`${fn.url}/session/logout`, {
    method: 'POST',
    headers: { cookie: session.cookie, 'x-static-security-key': session.staticKey },
  });
  if (res.status >= 300) throw new Error(`logout: ${res.status} ${await res.text()}`);
}

/** A kill delivered as Pub/Sub pushes it; resolves once the kill function answered (its deletes are done). */
async function kill(fn: FunctionProcess, user: string, id: string): Promise<void> {
  const res = await fetch(`${fn.url}/projects/session-test/topics/session-kill`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      message: { data: Buffer.from(JSON.stringify({ user })).toString('base64'), messageId: id, publishTime: new Date().toISOString() },
      subscription: 'projects/session-test/subscriptions/session-kill-push',
    }),
  });
  if (res.status >= 300) throw new Error(`kill: ${res.status} ${await res.text()}`);
}

/**
 * Reads the ended session on `fn` until it is refused; returns the reads that still served it.
 * Asserts that once refused it stays refused.
 */
async function readsUntilRefused(fn: FunctionProcess, cookie: string, user: string) {
  const served: Awaited<ReturnType<typeof read>>[] = [];
  await eventually(`the ended session refused on ${fn.url}`, async () => {
    const r = await read(fn, cookie);
    if (r.user === user) served.push(r);
    return r.user === null;
  });
  for (let i = 0; i < 5; i++) expect((await read(fn, cookie)).user).toBeNull();
  return served;
}

describe('read cache off (the default)', () => {
  let s: Stack;
  beforeAll(async () => {
    s = await stack(0);
  }, 60_000);

  test('a logout on instance A: instance B refuses the session on its next read', async () => {
    const session = await login(s.a, 'u-logout');
    expect((await read(s.b, session.cookie)).user).toBe('u-logout');
    await logout(s.a, session);
    expect((await read(s.b, session.cookie)).user).toBeNull();
  }, 60_000);

  test('a kill: once the kill function is done, both instances refuse the session on their next read, and the kill line carries its latency', async () => {
    const session = await login(s.a, 'u-kill');
    expect((await read(s.b, session.cookie)).user).toBe('u-kill');
    await kill(s.kill, 'u-kill', 'revocation-kill-1');
    expect((await read(s.a, session.cookie)).user).toBeNull();
    expect((await read(s.b, session.cookie)).user).toBeNull();
    const finished = s.kill.logs().find((l) => l.message === 'kill finished' && l.messageId === 'revocation-kill-1');
    expect(finished).toMatchObject({ deleted: 1, latencyMs: expect.any(Number) });
    expect(finished?.latencyMs as number).toBeGreaterThanOrEqual(0);
  }, 60_000);
});

describe(`read cache on (SESSION_READ_CACHE_MS=${CACHE_MS})`, () => {
  let s: Stack;
  beforeAll(async () => {
    s = await stack(CACHE_MS);
  }, 60_000);

  test('a logout on A: A refuses at once; B serves it only from its earlier read, for at most the cache time, then refuses it for good', async () => {
    const session = await login(s.a, 'u-cached-logout');
    const fill = await read(s.b, session.cookie);
    expect(fill.user).toBe('u-cached-logout');
    await logout(s.a, session);
    expect((await read(s.a, session.cookie)).user).toBeNull();
    const served = await readsUntilRefused(s.b, session.cookie, 'u-cached-logout');
    // Every stale answer came from the entry B filled before the logout: a request that started
    // after that entry's age limit could not have been served from it.
    for (const r of served) expect(r.startedAt).toBeLessThanOrEqual(fill.endedAt + CACHE_MS);
  }, 60_000);

  test('a kill: B serves the session at most until its entry expires, then refuses it; the bound is kill latency plus the cache time', async () => {
    const session = await login(s.a, 'u-cached-kill');
    const loggedInAt = Date.now();
    const fill = await read(s.b, session.cookie);
    expect(fill.user).toBe('u-cached-kill');
    await kill(s.kill, 'u-cached-kill', 'revocation-kill-2');
    const served = await readsUntilRefused(s.b, session.cookie, 'u-cached-kill');
    for (const r of served) expect(r.startedAt).toBeLessThanOrEqual(fill.endedAt + CACHE_MS);
    // A holds the session from the login's write: the same bound applies to it.
    for (const r of await readsUntilRefused(s.a, session.cookie, 'u-cached-kill'))
      expect(r.startedAt).toBeLessThanOrEqual(loggedInAt + CACHE_MS);
  }, 60_000);
});
