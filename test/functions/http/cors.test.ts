/**
 * CORS and the static key a page can send, at the HTTP level (the browser side of the same things
 * is in test/browser/). The API runs in functions-framework's test server on the Firestore emulator.
 */
import { connect, type AddressInfo } from 'node:net';
import request from 'supertest';
import { setLogSink } from '../../../lib/setup/log';
import { cookieOf, newSession, startApi, type ApiHarness } from '../../support/api';
import { countRpcs } from '../../support/fixtures';

const PAGE = 'https://www.example.test';
const OTHER = 'https://evil.example.test';

let api: ApiHarness;
const http = () => request(api.server);

beforeAll(async () => {
  api = await startApi();
  setLogSink(() => undefined);
});
afterAll(() => setLogSink(null));
beforeEach(() => {
  api.use({ SESSION_ALLOWED_ORIGINS: `${PAGE}, https://admin.example.test:8443` });
});

const ROUTES: Array<[string, string]> = [
  ['/healthz', 'GET'],
  ['/session', 'GET, PATCH'],
  ['/session/data/a%20b', 'GET, PUT, DELETE'],
  ['/session/reset', 'POST'],
  ['/session/touch', 'POST'],
  ['/session/security-key', 'GET'],
  ['/session/security-key/validate', 'POST'],
  ['/session/static-security-key/validate', 'POST'],
  ['/session/login', 'POST'],
  ['/session/logout', 'POST'],
  ['/sessions/kill', 'POST'],
];

function accessControlHeaders(res: request.Response): string[] {
  return Object.keys(res.headers).filter((h) => h.startsWith('access-control-'));
}

describe('preflight', () => {
  test.each(ROUTES)(
    'OPTIONS %s from an allowed origin: 204 with the methods, the accepted headers and a max-age, no store call',
    async (path, methods) => {
      const rpc = countRpcs();
      try {
        const res = await http()
          .options(path)
          .set('Origin', PAGE)
          .set('Access-Control-Request-Method', 'PUT')
          .set('Access-Control-Request-Headers', 'content-type,x-security-key')
          .set('Cookie', `${api.runtime.config.session.cookie.name}=${'A'.repeat(43)}`);
        expect(res.status).toBe(204);
        expect(res.headers).toMatchObject({
          'access-control-allow-origin': PAGE,
          'access-control-allow-credentials': 'true',
          'access-control-allow-methods': methods,
          'access-control-allow-headers': 'Content-Type, X-Security-Key, X-Static-Security-Key',
          'access-control-max-age': '600',
          allow: methods,
          vary: 'Origin',
        });
        expect(res.headers['set-cookie']).toBeUndefined();
        expect(rpc.total()).toBe(0);
      } finally {
        rpc.restore();
      }
    },
  );

  test('OPTIONS from an unlisted origin, from a look-alike of an allowed one, or without Origin: 204 with Allow and not one Access-Control-* header', async () => {
    for (const origin of [
      OTHER,
      'https://www.example.test.evil.test',
      'http://www.example.test',
      'https://www.example.test:444',
      'null',
      undefined,
    ]) {
      const req = http().options('/session/data/x').set('Access-Control-Request-Method', 'PUT');
      const res = await (origin === undefined ? req : req.set('Origin', origin));
      expect({ origin, status: res.status, cors: accessControlHeaders(res), allow: res.headers.allow, vary: res.headers.vary }).toEqual({
        origin,
        status: 204,
        cors: [],
        allow: 'GET, PUT, DELETE',
        vary: 'Origin',
      });
    }
  });

  test('OPTIONS of an unknown route is 404 (with CORS headers for an allowed origin, so the page can read it)', async () => {
    const res = await http().options('/nope').set('Origin', PAGE).set('Access-Control-Request-Method', 'GET').expect(404);
    expect(res.body.error.code).toBe('not_found');
    expect(res.headers['access-control-allow-origin']).toBe(PAGE);
  });

  test('an allowed origin given with a port is matched with that port only', async () => {
    const res = await http()
      .options('/session')
      .set('Origin', 'https://admin.example.test:8443')
      .set('Access-Control-Request-Method', 'PATCH')
      .expect(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://admin.example.test:8443');
    const bare = await http()
      .options('/session')
      .set('Origin', 'https://admin.example.test')
      .set('Access-Control-Request-Method', 'PATCH')
      .expect(204);
    expect(accessControlHeaders(bare)).toEqual([]);
  });
});

describe('actual requests', () => {
  test('an allowed origin gets its origin reflected, credentials, and the key headers exposed, on answers and on errors', async () => {
    const key = await http().get('/session/security-key').set('Origin', PAGE).expect(200);
    expect(key.headers).toMatchObject({
      'access-control-allow-origin': PAGE,
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'X-Security-Key, Sec-X-ViUR-StaticSKey',
      vary: 'Origin',
    });
    const cookie = cookieOf(key);
    const put = await http()
      .put('/session/data/a')
      .set('Origin', PAGE)
      .set('Cookie', cookie)
      .set('X-Security-Key', key.body.securityKey)
      .type('json')
      .send('1')
      .expect(200);
    expect(put.headers['x-security-key']).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(put.headers['access-control-allow-origin']).toBe(PAGE);
    const refused = await http().put('/session/data/a').set('Origin', PAGE).set('Cookie', cookie).type('json').send('2').expect(403);
    expect(refused.body.error.code).toBe('csrf');
    expect(refused.headers['access-control-allow-origin']).toBe(PAGE);
    expect(refused.headers['access-control-allow-credentials']).toBe('true');
  });

  test('any other origin never gets an Access-Control-* header, on reads, refusals or errors; never *', async () => {
    const requests = [
      () => http().get('/session'),
      () => http().get('/session/security-key'),
      () => http().patch('/session').send({ a: 1 }),
      () => http().get('/nope'),
      () => http().delete('/session'),
    ];
    for (const origin of [OTHER, 'null', 'https://www.example.test.evil.test']) {
      for (const make of requests) {
        const res = await make().set('Origin', origin);
        expect({ origin, status: res.status, cors: accessControlHeaders(res), vary: res.headers.vary }).toEqual({
          origin,
          status: res.status,
          cors: [],
          vary: 'Origin',
        });
      }
    }
    const none = await http().get('/session').expect(200);
    expect(accessControlHeaders(none)).toEqual([]);
    expect(none.headers.vary).toBe('Origin');
  });

  test('without SESSION_ALLOWED_ORIGINS nobody gets CORS headers', async () => {
    api.use();
    const res = await http().options('/session').set('Origin', PAGE).set('Access-Control-Request-Method', 'PATCH').expect(204);
    expect(accessControlHeaders(res)).toEqual([]);
  });
});

describe('GET /session/security-key refuses cross-site requests', () => {
  test('a cross-site navigation (Sec-Fetch-Site: cross-site), a sibling site (same-site) or a foreign Origin mints nothing and sets no cookie; same-origin and allowed pass', async () => {
    const { cookie } = await newSession(api.server);
    const id = cookie.slice(cookie.indexOf('=') + 1);
    const { digest } = await import('../../../lib/core/ids');
    const before = await api.store.get(digest(id));
    for (const headers of [
      { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'navigate' },
      { 'Sec-Fetch-Site': 'same-site', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Dest': 'image' },
      { Origin: OTHER },
      { Origin: 'null' },
    ]) {
      const res = await http().get('/session/security-key?count=16').set('Cookie', cookie).set(headers);
      expect({ headers, status: res.status, code: res.body.error?.code, setCookie: res.headers['set-cookie'] }).toEqual({
        headers,
        status: 403,
        code: 'cross_site',
        setCookie: undefined,
      });
    }
    // Without a cookie neither: no session is started for a cross-site request.
    const fresh = await http().get('/session/security-key').set('Sec-Fetch-Site', 'cross-site');
    expect([fresh.status, fresh.headers['set-cookie']]).toEqual([403, undefined]);
    expect(await api.store.get(digest(id))).toEqual(before);
    await http().get('/session/security-key').set('Cookie', cookie).set('Sec-Fetch-Site', 'same-origin').expect(200);
    await http().get('/session/security-key').set('Cookie', cookie).set('Origin', PAGE).expect(200);
  });
});

describe('the static key from page scripts', () => {
  test.each(['X-Static-Security-Key', 'Sec-X-ViUR-StaticSKey', 'Sec-X-ViUR-StaticSessionKey'])(
    '%s carries the static key on a change',
    async (header) => {
      const first = await http().get('/session/security-key').expect(200);
      const cookie = cookieOf(first);
      const staticKey = first.headers['sec-x-viur-staticskey'];
      expect(staticKey).toMatch(/^[A-Za-z0-9_-]{40,}$/);
      await http()
        .put('/session/data/a')
        .set('Cookie', cookie)
        .set(header, staticKey)
        .type('json')
        .send('1')
        .expect(200, { key: 'a', value: 1 });
      const wrong = await http().put('/session/data/a').set('Cookie', cookie).set(header, 'A'.repeat(43)).type('json').send('2');
      expect([wrong.status, wrong.body.error.code]).toEqual([403, 'csrf']);
      await http().get('/session/data/a').set('Cookie', cookie).expect(200, { key: 'a', value: 1 });
    },
  );

  test('a wrong key in one static header does not hide the right one in another', async () => {
    const first = await http().get('/session/security-key').expect(200);
    const cookie = cookieOf(first);
    const staticKey = first.headers['sec-x-viur-staticskey'];
    await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('Sec-X-ViUR-StaticSKey', 'A'.repeat(43))
      .set('X-Static-Security-Key', staticKey)
      .send({ b: 2 })
      .expect(200);
  });
});

describe('Origin: null (issue 26, finding 5)', () => {
  test('an allowed origin without a web origin (capacitor://, chrome-extension://, file://) stops the start; Origin: null never gets CORS', async () => {
    for (const origin of [
      'capacitor://localhost',
      'ionic://localhost',
      'chrome-extension://abcdefghijklmnopabcdefghijklmnop',
      'file:///',
    ]) {
      // Normalised with new URL(o).origin these all became "null": the value every sandboxed iframe sends.
      expect(() => api.use({ SESSION_ALLOWED_ORIGINS: `${PAGE}, ${origin}` })).toThrow(
        new RegExp(`^SESSION_ALLOWED_ORIGINS: ${origin.replace(/[/.]/g, '\\$&')} is not an http\\(s\\) origin`),
      );
    }
    // A runtime whose list holds "null" anyway (a library user's own Config) still gives Origin: null nothing.
    const rt = api.use();
    rt.config.allowedOrigins = ['null', PAGE];
    const { cookie, key } = await newSession(api.server);
    const read = await http().get('/session').set('Origin', 'null').set('Cookie', cookie).expect(200);
    const preflight = await http().options('/session').set('Origin', 'null').set('Access-Control-Request-Method', 'PATCH').expect(204);
    const change = await http().patch('/session').set('Origin', 'null').set('Cookie', cookie).set('X-Security-Key', key).send({ a: 1 });
    expect([read, preflight, change].map((r) => [r.status, accessControlHeaders(r)])).toEqual([
      [200, []],
      [204, []],
      [403, []],
    ]);
    expect(change.body.error.code).toBe('cross_site');
  });
});

/**
 * Issue 26, finding 9: answers given before the function runs (the body layer's 400, 413, 415 and
 * 408, the framework's router errors and its own 404s) carry the headers of every other answer.
 */
describe('answers given before the function runs carry the same headers', () => {
  const raw = (origin: string, head: string, body = ''): Promise<{ status: number; headers: Record<string, string> }> =>
    new Promise((resolve, reject) => {
      const server = api.server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        const socket = connect(port, '127.0.0.1');
        let text = '';
        socket.on('data', (c: Buffer) => {
          text += c.toString('latin1');
          const end = text.indexOf('\r\n\r\n');
          if (end < 0) return;
          const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
          socket.destroy();
          server.close();
          resolve({
            status: Number(statusLine.split(' ')[1]),
            headers: Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()])),
          });
        });
        socket.on('error', reject);
        socket.write(`${head.replace('\n', `\r\nHost: 127.0.0.1:${port}\r\nOrigin: ${origin}\r\n`)}\r\n\r\n${body}`);
      });
    });

  const cases: Array<[string, string, string, number]> = [
    ['400 bad_json', 'PATCH /session HTTP/1.1\nContent-Type: application/json\r\nContent-Length: 2', '{"', 400],
    ['413 too_large (declared)', 'PUT /session/data/a HTTP/1.1\nContent-Type: application/json\r\nContent-Length: 99999999', '', 413],
    [
      '415 (a charset other than UTF-8)',
      'PUT /session/data/a HTTP/1.1\nContent-Type: application/json; charset=latin1\r\nContent-Length: 1',
      '1',
      415,
    ],
    ['400 (invalid percent-encoding, the router)', 'GET /session/data/%ZZ HTTP/1.1\n', '', 400],
    ["404 (the framework's own, /favicon.ico)", 'GET /favicon.ico HTTP/1.1\n', '', 404],
  ];

  test.each(cases)('%s: Cache-Control, Vary and CORS for an allowed origin', async (_name, head, body, status) => {
    const res = await raw(PAGE, head, body);
    expect({ status: res.status, headers: res.headers }).toEqual({
      status,
      headers: expect.objectContaining({
        'cache-control': 'no-store',
        vary: 'Origin',
        'access-control-allow-origin': PAGE,
        'access-control-allow-credentials': 'true',
        'access-control-expose-headers': 'X-Security-Key, Sec-X-ViUR-StaticSKey',
      }),
    });
  });

  test.each(cases)(
    '%s: Cache-Control and Vary, and no Access-Control-* header, for any other origin',
    async (_name, head, body, status) => {
      const res = await raw(OTHER, head, body);
      expect([res.status, res.headers['cache-control'], res.headers.vary]).toEqual([status, 'no-store', 'Origin']);
      expect(Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    },
  );
});
