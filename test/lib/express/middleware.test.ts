/**
 * The Express middleware (`viur-session-functions/express`) in the real Express 5 and Express 4
 * (installed as `express4`), through supertest, on the memory store and on the Datastore emulator:
 * req.session saved before the answer with the session cookie appended to the app's own, csrf()
 * consuming the key before the handler (of concurrent requests with one key exactly one handler
 * runs), reset/logout rotating the cookie, and every failure (store down at load, at the guard, at
 * the save; the session ended meanwhile) answered as JSON before any of the handler's headers went out.
 */
import type { Express, NextFunction, Request, Response } from 'express';
import express5 from 'express';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import request from 'supertest';
import { csrf, session, sessionOf, type SessionRequest } from '../../../lib/express';
import { SessionEndedError, StoreUnavailableError } from '../../../lib/core/errors';
import { digest } from '../../../lib/core/ids';
import { Session } from '../../../lib/core/session';
import type { SessionManager } from '../../../lib/core/manager';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import type { Decision, SessionSelector, SessionStore, StorageKey, StoredSession } from '../../../lib/store/sessionStore';
import { datastoreStore, FakeClock, manager, uniqueNamespace } from '../../support/fixtures';
import { freePort } from '../../../scripts/emulators';
import { Relay, storeAt } from '../../reliability/support';

// Express 4 under an alias (devDependency `express4`); its API is the same for what these tests use.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const express4 = require('express4') as typeof express5;

const COOKIE = /^__Host-viur_cookie_session-test=([A-Za-z0-9_-]{43}); /;
const KEY = /^[A-Za-z0-9_-]{43}$/;

/** A store that delegates, and fails reads or updates on demand as a store that is down does. */
class FlakyStore implements SessionStore {
  failGet = false;
  failUpdate = false;
  constructor(readonly inner: SessionStore) {}
  get(key: StorageKey): Promise<StoredSession | null> {
    return this.failGet ? Promise.reject(new StoreUnavailableError()) : this.inner.get(key);
  }
  update<T>(key: StorageKey | null, decide: (current: StoredSession | null) => Decision<T>): Promise<T> {
    return this.failUpdate ? Promise.reject(new StoreUnavailableError()) : this.inner.update(key, decide);
  }
  findKeys(selector: SessionSelector, limit: number, cursor?: string) {
    return this.inner.findKeys(selector, limit, cursor);
  }
  listUserSessions(user: string, expiresAfter: number, limit: number, cursor?: string) {
    return this.inner.listUserSessions(user, expiresAfter, limit, cursor);
  }
  findUserSession(user: string, handle: string, expiresAfter: number) {
    return this.inner.findUserSession(user, handle, expiresAfter);
  }
  endSessions(keys: StorageKey[]) {
    return this.inner.endSessions(keys);
  }
  deleteMany(keys: StorageKey[]) {
    return this.inner.deleteMany(keys);
  }
}

function setCookies(res: request.Response): string[] {
  return (res.headers['set-cookie'] as unknown as string[] | undefined) ?? [];
}
function sessionCookie(res: request.Response): string {
  const found = setCookies(res).find((c) => COOKIE.test(c));
  if (!found) throw new Error(`no session cookie in ${res.status} ${JSON.stringify(res.headers)}`);
  return found.split(';')[0];
}

interface Harness {
  app: Express;
  store: FlakyStore;
  sessions: SessionManager;
  /** How often each guarded handler ran. */
  runs: Record<string, number>;
  errors: unknown[];
}

function harness(express: typeof express5, inner: SessionStore): Harness {
  const store = new FlakyStore(inner);
  const sessions = manager(store, new FakeClock(Date.now()));
  const runs: Record<string, number> = {};
  const errors: unknown[] = [];
  const ran = (name: string) => (runs[name] = (runs[name] ?? 0) + 1);
  const app = express();
  // A middleware before session(): its headers survive a failed save's answer.
  app.use((_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('X-Before', 'kept');
    next();
  });
  app.use(session({ sessions, onError: (err) => errors.push(err) }));
  app.get('/visits', (req: Request, res: Response) => {
    const s = sessionOf(req);
    const visits = s.get<number>('visits', 0) + 1;
    s.set('visits', visits);
    res.json({ visits, same: (req as unknown as SessionRequest).session === s, isSession: s instanceof Session });
  });
  app.get('/key', (req: Request, res: Response) => {
    res.json({ key: sessionOf(req).getSecurityKey() });
  });
  app.get('/view', (req: Request, res: Response) => {
    res.json(sessionOf(req));
  });
  app.get('/own-cookie', (req: Request, res: Response) => {
    res.cookie('theme', 'dark');
    sessionOf(req).set('seen', true);
    res.json({ ok: true });
  });
  app.get('/raw', (req: Request, res: Response) => {
    sessionOf(req).set('raw', true);
    res.writeHead(202, { 'Set-Cookie': ['a=1; Path=/', 'b=2; Path=/'], 'Content-Type': 'text/plain' });
    res.end('raw answer');
  });
  app.get('/stream', (req: Request, res: Response) => {
    sessionOf(req).set('streamed', true);
    res.setHeader('Content-Type', 'text/plain');
    res.write('one ');
    res.write('two ');
    res.end('three');
  });
  app.post('/order', csrf(), (req: Request, res: Response) => {
    ran('order');
    sessionOf(req).set('order', runs.order);
    res.status(201).json({ ordered: true });
  });
  app.post('/login', csrf(), (req: Request, res: Response) => {
    sessionOf(req).login('alice');
    res.json({ ok: true });
  });
  app.post('/logout', csrf(), (req: Request, res: Response) => {
    sessionOf(req).logout();
    res.json(sessionOf(req));
  });
  app.post('/reset', csrf(), (req: Request, res: Response) => {
    sessionOf(req).reset();
    res.json(sessionOf(req));
  });
  // Save failures: the store goes down, or the session is ended, while the handler runs.
  app.post('/outage', csrf(), (req: Request, res: Response) => {
    ran('outage');
    store.failUpdate = true;
    sessionOf(req).set('lost', true);
    res.cookie('theme', 'dark');
    res.setHeader('X-Handler', 'dropped');
    res.status(201).json({ ordered: true });
  });
  app.post('/killed', csrf(), async (req: Request, res: Response) => {
    ran('killed');
    await sessions.store.endSessions([sessionOf(req).loadedKey!]);
    sessionOf(req).set('lost', true);
    res.cookie('theme', 'dark');
    res.json({ ok: true });
  });
  app.post('/changes-first', (req: Request, _res: Response, next: NextFunction) => {
    sessionOf(req).set('early', true);
    next();
  });
  app.post('/changes-first', csrf(), (_req: Request, res: Response) => {
    res.json({ ok: true });
  });
  return { app, store, sessions, runs, errors };
}

/** A session with a cookie and `n` one-time keys. */
async function withKeys(app: Express, n = 1): Promise<{ cookie: string; keys: string[]; staticKey: string }> {
  const first = await request(app).get('/key').expect(200);
  const cookie = sessionCookie(first);
  const keys = [first.body.key as string];
  for (let i = 1; i < n; i++) keys.push((await request(app).get('/key').set('Cookie', cookie).expect(200)).body.key as string);
  return { cookie, keys, staticKey: first.headers['sec-x-viur-staticskey'] };
}

describe.each([
  ['Express 5', express5],
  ['Express 4', express4],
])('%s', (_major, express) => {
  test('the majors are the real packages', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const version = (name: string) => (require(`${name}/package.json`) as { version: string }).version;
    expect(version(express === express5 ? 'express' : 'express4')).toMatch(express === express5 ? /^5\./ : /^4\./);
  });

  describe.each([
    ['memory store', () => new MemorySessionStore()],
    ['Datastore emulator', () => datastoreStore(uniqueNamespace('express'))],
  ])('on the %s', (_label, makeStore) => {
    let h: Harness;
    beforeEach(() => {
      h = harness(express, makeStore());
    });

    test('req.session is the library’s Session, saved before the answer: visits count per cookie', async () => {
      const first = await request(h.app).get('/visits').expect(200, { visits: 1, same: true, isSession: true });
      const cookie = sessionCookie(first);
      expect(setCookies(first)[0]).toMatch(/; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
      expect(first.headers['sec-x-viur-staticskey']).toMatch(KEY);
      const second = await request(h.app).get('/visits').set('Cookie', cookie).expect(200, { visits: 2, same: true, isSession: true });
      expect(setCookies(second)).toEqual([]);
      await request(h.app).get('/visits').expect(200, { visits: 1, same: true, isSession: true });
    });

    test('the app’s own cookies are kept: res.cookie(), and writeHead() with Set-Cookie; the session cookie is appended after them', async () => {
      const own = await request(h.app).get('/own-cookie').expect(200, { ok: true });
      expect(setCookies(own)).toEqual(['theme=dark; Path=/', expect.stringMatching(COOKIE)]);
      const raw = await request(h.app).get('/raw').expect(202, 'raw answer');
      expect(raw.headers['content-type']).toBe('text/plain');
      expect(setCookies(raw)).toEqual(['a=1; Path=/', 'b=2; Path=/', expect.stringMatching(COOKIE)]);
      const cookie = sessionCookie(raw);
      await request(h.app)
        .get('/view')
        .set('Cookie', cookie)
        .expect(200, { user: null, data: { raw: true } });
    });

    test('a streamed answer is held until the session is saved, then sent whole', async () => {
      const res = await request(h.app).get('/stream').expect(200, 'one two three');
      await request(h.app)
        .get('/view')
        .set('Cookie', sessionCookie(res))
        .expect(200, { user: null, data: { streamed: true } });
    });

    test('csrf(): a one-time key is consumed before the handler and the fresh one comes back; a spent, missing or foreign key runs nothing', async () => {
      const { cookie, keys } = await withKeys(h.app);
      const ok = await request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', keys[0]).expect(201, { ordered: true });
      const fresh = ok.headers['x-security-key'];
      expect(fresh).toMatch(KEY);
      expect(fresh).not.toBe(keys[0]);
      expect(setCookies(ok)).toEqual([]);
      const refused = await request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', keys[0]).expect(403);
      expect(refused.body).toEqual({ error: { code: 'csrf', message: expect.stringContaining('X-Security-Key') } });
      expect(refused.headers['x-security-key']).toBeUndefined();
      expect(setCookies(refused)).toEqual([]);
      await request(h.app).post('/order').set('Cookie', cookie).expect(403);
      const other = await withKeys(h.app);
      await request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', other.keys[0]).expect(403);
      await request(h.app).post('/order').set('X-Security-Key', fresh).expect(403);
      expect(h.runs.order).toBe(1);
      await request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', fresh).expect(201);
      await request(h.app)
        .get('/view')
        .set('Cookie', cookie)
        .expect(200, { user: null, data: { order: 2 } });
      expect(h.errors).toEqual([]);
    });

    test('csrf(): the static key passes (not consumed, no fresh key); GET, HEAD and OPTIONS need no key', async () => {
      const { cookie, staticKey } = await withKeys(h.app);
      expect(staticKey).toMatch(KEY);
      for (let i = 0; i < 2; i++) {
        const res = await request(h.app).post('/order').set('Cookie', cookie).set('X-Static-Security-Key', staticKey).expect(201);
        expect(res.headers['x-security-key']).toBeUndefined();
      }
      await request(h.app).post('/order').set('Cookie', cookie).set('X-Static-Security-Key', 'x'.repeat(43)).expect(403);
      expect(h.runs.order).toBe(2);
      await request(h.app).get('/visits').set('Cookie', cookie).expect(200);
    });

    test('concurrent requests with one one-time key: exactly one handler runs, the others get 403 csrf', async () => {
      const { cookie, keys } = await withKeys(h.app);
      const answers = await Promise.all(
        Array.from({ length: 5 }, () => request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', keys[0])),
      );
      expect(answers.map((a) => a.status).sort()).toEqual([201, 403, 403, 403, 403]);
      expect(h.runs.order).toBe(1);
      await request(h.app)
        .get('/view')
        .set('Cookie', cookie)
        .expect(200, { user: null, data: { order: 1 } });
    });

    test('concurrent requests with distinct keys of one session all run, and all their changes are kept', async () => {
      const { cookie, keys } = await withKeys(h.app, 3);
      const answers = await Promise.all(keys.map((k) => request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', k)));
      expect(answers.map((a) => a.status)).toEqual([201, 201, 201]);
      expect(new Set(answers.map((a) => a.headers['x-security-key'])).size).toBe(3);
      expect(h.runs.order).toBe(3);
    });

    test('login, logout and reset (express-session’s regenerate and destroy) rotate the cookie; the old one answers 409', async () => {
      const { cookie, keys } = await withKeys(h.app);
      const login = await request(h.app).post('/login').set('Cookie', cookie).set('X-Security-Key', keys[0]).expect(200);
      const alice = sessionCookie(login);
      expect(alice).not.toBe(cookie);
      expect(login.headers['sec-x-viur-staticskey']).toMatch(KEY);
      await request(h.app).get('/view').set('Cookie', alice).expect(200, { user: 'alice', data: {} });
      const old = await request(h.app).get('/view').set('Cookie', cookie).expect(409);
      expect(old.body).toEqual({ error: { code: 'session_ended', message: expect.any(String) } });
      expect(setCookies(old)).toEqual([]);

      // The key that comes back belongs to the new session (issued in the save that rotated it).
      const reset = await request(h.app)
        .post('/reset')
        .set('Cookie', alice)
        .set('X-Security-Key', login.headers['x-security-key'])
        .expect(200, { user: null, data: {} });
      const fresh = sessionCookie(reset);
      expect(fresh).not.toBe(alice);
      await request(h.app).get('/view').set('Cookie', alice).expect(409);

      const logout = await request(h.app)
        .post('/logout')
        .set('Cookie', fresh)
        .set('X-Security-Key', reset.headers['x-security-key'])
        .expect(200, { user: null, data: {} });
      const guest = sessionCookie(logout);
      await request(h.app).get('/view').set('Cookie', fresh).expect(409);
      await request(h.app).post('/order').set('Cookie', guest).set('X-Security-Key', logout.headers['x-security-key']).expect(201);
      await request(h.app)
        .get('/view')
        .set('Cookie', guest)
        .expect(200, { user: null, data: { order: 1 } });
    });

    test('the store down at load: 503 JSON with Retry-After before the handler', async () => {
      const { cookie, keys } = await withKeys(h.app);
      h.store.failGet = true;
      const res = await request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', keys[0]).expect(503);
      expect(res.body).toEqual({ error: { code: 'store_unavailable', message: expect.any(String) } });
      expect(res.headers['retry-after']).toBe('1');
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(h.runs.order).toBeUndefined();
      expect(h.errors).toEqual([expect.any(StoreUnavailableError)]);
    });

    test('the store down at the guard: 503, the handler never runs, the key is still good afterwards', async () => {
      const { cookie, keys } = await withKeys(h.app);
      h.store.failUpdate = true;
      await request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', keys[0]).expect(503);
      expect(h.runs.order).toBeUndefined();
      h.store.failUpdate = false;
      await request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', keys[0]).expect(201);
    });

    test('the store down at the save: 503 instead of the handler’s answer, none of its headers or cookies; the committed fresh key is kept', async () => {
      const { cookie, keys } = await withKeys(h.app);
      const res = await request(h.app).post('/outage').set('Cookie', cookie).set('X-Security-Key', keys[0]).expect(503);
      expect(h.runs.outage).toBe(1);
      expect(res.body).toEqual({ error: { code: 'store_unavailable', message: expect.any(String) } });
      expect(res.headers['retry-after']).toBe('1');
      expect(res.headers['x-handler']).toBeUndefined();
      expect(res.headers['x-before']).toBe('kept');
      expect(setCookies(res)).toEqual([]);
      const fresh = res.headers['x-security-key'];
      expect(fresh).toMatch(KEY);
      h.store.failUpdate = false;
      await request(h.app).get('/view').set('Cookie', cookie).expect(200, { user: null, data: {} });
      await request(h.app).post('/order').set('Cookie', cookie).set('X-Security-Key', fresh).expect(201);
      expect(h.errors).toEqual([expect.any(StoreUnavailableError)]);
    });

    test('the session ended while the handler ran (a kill): 409 session_ended, nothing resurrected, no cookie', async () => {
      const { cookie, keys } = await withKeys(h.app);
      const res = await request(h.app).post('/killed').set('Cookie', cookie).set('X-Security-Key', keys[0]).expect(409);
      expect(res.body).toEqual({ error: { code: 'session_ended', message: expect.any(String) } });
      expect(setCookies(res)).toEqual([]);
      expect(h.runs.killed).toBe(1);
      expect(await h.store.get(digest(cookie.slice(cookie.indexOf('=') + 1)))).toBe(null);
      expect(h.errors).toEqual([expect.any(SessionEndedError)]);
    });

    test('csrf() after a change to req.session, or without session(): a programming error, not a silent pass', async () => {
      const { cookie, keys } = await withKeys(h.app);
      await request(h.app).post('/changes-first').set('Cookie', cookie).set('X-Security-Key', keys[0]).expect(500);
      const bare = express();
      bare.post('/x', csrf(), (_req: Request, res: Response) => {
        res.json({ ran: true });
      });
      await request(bare).post('/x').expect(500);
      expect(() => sessionOf(new IncomingMessage(new Socket()))).toThrow('session({ sessions })');
    });
  });
});

describe('on the Datastore emulator, the store cut off at the network while the handler runs', () => {
  test.each([
    ['Express 5', express5],
    ['Express 4', express4],
  ])('%s: 503 store_unavailable before any of the handler’s headers went out', async (_major, express) => {
    const [host, port] = process.env.DATASTORE_EMULATOR_HOST!.split(':');
    const relay = new Relay(await freePort(), { host: host, port: Number(port) });
    await relay.open();
    try {
      const { store } = storeAt(relay.port, 2000, uniqueNamespace('express-outage'));
      const sessions = manager(store, new FakeClock(Date.now()));
      const app = express();
      app.use(session({ sessions, onError: () => undefined }));
      app.get('/key', (req: Request, res: Response) => {
        res.json({ key: sessionOf(req).getSecurityKey() });
      });
      app.post('/write', csrf(), async (req: Request, res: Response) => {
        await relay.close();
        sessionOf(req).set('lost', true);
        res.cookie('theme', 'dark');
        res.status(201).json({ ok: true });
      });
      const first = await request(app).get('/key').expect(200);
      const res = await request(app)
        .post('/write')
        .set('Cookie', sessionCookie(first))
        .set('X-Security-Key', first.body.key as string)
        .expect(503);
      expect(res.body).toEqual({ error: { code: 'store_unavailable', message: expect.any(String) } });
      expect(res.headers['retry-after']).toBe('1');
      expect(setCookies(res)).toEqual([]);
    } finally {
      await relay.close();
    }
  });
});
