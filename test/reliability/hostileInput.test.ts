/**
 * Hostile input, property-based (fast-check), with bounded runs:
 *
 * - the HTTP API (the real module that registers the functions, functions-framework's server on a
 *   loopback port, the Firestore emulator): random methods, paths, header and cookie values, bodies,
 *   content types, sizes, unicode and prototype keys. Never a 5xx, every refusal the JSON error body,
 *   the process alive. A victim session with known data is targeted by half of the requests, none
 *   of which holds a valid key: afterwards it is unchanged, no kill was published, nothing polluted.
 * - the kill message parser: arbitrary bytes and JSON never throw anything but
 *   MalformedKillMessageError, and what it accepts is well-formed.
 */
import { request as httpRequest, Agent, METHODS, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { digest } from '../../lib/core/ids';
import { MalformedKillMessageError, parseKillMessageData, validateKillMessage } from '../../lib/jobs/killMessage';
import { MAX_USERS_PER_MESSAGE } from '../../lib/core/limits';
import { receivedMessage } from '../../functions/killSessionByUser';
import { setLogSink } from '../../lib/setup/log';
import { ADMIN_EMAIL, AUDIENCE, startApi, type ApiHarness } from '../support/api';
import { Client, cookieOf, listen, problems } from './support';

const RUNS = 400;
const COOKIE = '__Host-viur_cookie_session-test';

let api: ApiHarness;
let base: URL;
let close: () => Promise<void>;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });
const logLines: string[] = [];
/** Receives kill messages if any request managed to publish one (SESSION_KILL_PUSH_URL). */
let killSink: Server;
const published: string[] = [];

beforeAll(async () => {
  killSink = createServer((req, res) => {
    published.push(`${req.method} ${req.url}`);
    res.end();
  });
  await new Promise<void>((r) => killSink.listen(0, '127.0.0.1', () => r()));
  const killUrl = `http://127.0.0.1:${(killSink.address() as AddressInfo).port}/projects/session-test/topics/session-kill`;
  api = await startApi({ SESSION_KILL_PUSH_URL: killUrl });
  api.use({ SESSION_KILL_PUSH_URL: killUrl, SESSION_MAX_DATA_BYTES: '65536' });
  setLogSink((line) => logLines.push(line));
  const l = await listen(api.server);
  base = new URL(l.url);
  close = l.close;
});

afterAll(async () => {
  setLogSink(null);
  agent.destroy();
  await close?.();
  await new Promise<void>((r) => killSink.close(() => r()));
});

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * A request as bytes on the wire: any method node's parser knows, raw header values, chunked or sized
 * bodies. (Raw header arrays get no default Host header; a request without one is refused by node's
 * HTTP server itself, before any of our code, with an empty 400.)
 */
function send(method: string, path: string, headers: Array<[string, string]>, body: Buffer | undefined, chunked: boolean): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        agent,
        headers: [
          ['host', base.host],
          ...headers,
          ...(body === undefined ? [] : chunked ? [['transfer-encoding', 'chunked']] : [['content-length', String(body.length)]]),
        ].flat(),
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within 30 s`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Header values node will put on the wire: tab, printable ASCII and Latin-1. */
const headerText = (maxLength = 120) =>
  fc.string({
    unit: fc
      .integer({ min: 0x20, max: 0xff })
      .filter((c) => c !== 0x7f)
      .map((c) => String.fromCharCode(c)),
    maxLength,
  });
/** A string of the shape of a session id or key (43 base64url characters) that the server never issued. */
const tokenShaped = fc.string({
  unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('')),
  minLength: 43,
  maxLength: 43,
});
const protoKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__defineGetter__', 'valueOf');
const unicode = fc.string({ unit: 'binary', maxLength: 40 });
const segment = fc.oneof(
  protoKey,
  unicode.map(encodeURIComponent),
  fc.constantFrom('..', '%2e%2e', '%2F', '%00', '%ZZ', '%', '%C0%AF', '%ED%A0%80', 'a%20b', '.', '~'),
  fc.webSegment(),
);

const paths = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      '/session',
      '/session/reset',
      '/session/touch',
      '/session/logout',
      '/session/login',
      '/sessions/kill',
      '/session/security-key/validate',
      '/session/static-security-key/validate',
      '/healthz',
      '/session/security-key',
    ),
  },
  { weight: 4, arbitrary: segment.map((s) => `/session/data/${s}`) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('/session/security-key?count=', '/session?', '/session/data/a?'), headerText(20))
      .map(([p, q]) => p + encodeURIComponent(q)),
  },
  { weight: 1, arbitrary: fc.array(segment, { maxLength: 5 }).map((s) => `/${s.join('/')}`) },
  { weight: 1, arbitrary: fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '//session',
      '/session/',
      '/session//data/a',
      '/SESSION',
      '/session/data/',
      '/session/data/a/b',
      '/./session',
      '/session/../session',
      '*',
    ),
  },
);

/** Prototype keys as real JSON keys (JSON.stringify drops a literal __proto__ property). */
const protoJson = fc
  .tuple(protoKey, fc.jsonValue({ maxDepth: 2 }), fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }))
  .map(
    ([k, v, rest]) =>
      `{${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}${Object.keys(rest).length ? ',' + JSON.stringify(rest).slice(1, -1) : ''}}`,
  );
const bodies = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
  { weight: 2, arbitrary: protoJson.map((t) => Buffer.from(t)) },
  {
    weight: 2,
    arbitrary: fc
      .record({
        key: fc.oneof(tokenShaped, unicode, fc.jsonValue({ maxDepth: 1 })),
        user: fc.oneof(fc.constant(null), unicode, fc.jsonValue({ maxDepth: 1 })),
      })
      .map((o) => Buffer.from(JSON.stringify(o))),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: unicode.map((s) => Buffer.from(s, 'utf8')) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 1000, max: 120_000 }), fc.constantFrom('"', '{"a":"', '[', '{"__proto__":{"x":"'))
      .map(([n, open]) => Buffer.from(open + 'x'.repeat(n))),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('', ' ', 'null', '{}', '[]', '{"a":', '\uFEFF{}', '{"a":1,"a":2}', '1e999', '-0', '"\\ud800"')
      .map((s) => Buffer.from(s)),
  },
);
const contentTypes = fc.oneof(
  fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=latin1',
    'application/merge-patch+json',
    'APPLICATION/JSON',
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/octet-stream',
    'application/json; charset="UTF-16"',
    '',
  ),
  headerText(60),
);

interface Spec {
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body: Buffer | undefined;
  chunked: boolean;
}

const METHODS_KNOWN = METHODS.filter((m) => m !== 'CONNECT');

function hostile(victimCookie: string): fc.Arbitrary<Spec> {
  const cookie = fc.oneof(
    { weight: 6, arbitrary: fc.constant(victimCookie) },
    { weight: 1, arbitrary: tokenShaped.map((t) => `${COOKIE}=${t}`) },
    { weight: 1, arbitrary: headerText(200).map((t) => `${COOKIE}=${t}`) },
    { weight: 1, arbitrary: headerText(200) },
    { weight: 1, arbitrary: tokenShaped.map((t) => `${COOKIE}=${t}; ${victimCookie}`) },
    { weight: 1, arbitrary: fc.tuple(protoKey, headerText(20)).map(([k, v]) => `${k}=${v}; ${victimCookie}`) },
  );
  const optional = (name: string, arb: fc.Arbitrary<string>) =>
    fc.option(
      arb.map((v): [string, string] => [name, v]),
      { nil: undefined },
    );
  // Mostly a method the route has (so requests get past routing to CSRF, auth and body checks), sometimes anything.
  const routed = fc.oneof(
    fc.constantFrom<[string, string]>(
      ['PATCH', '/session'],
      ['POST', '/session/reset'],
      ['POST', '/session/touch'],
      ['POST', '/session/logout'],
      ['POST', '/session/login'],
      ['POST', '/sessions/kill'],
      ['POST', '/session/security-key/validate'],
      ['POST', '/session/static-security-key/validate'],
      ['GET', '/session'],
    ),
    fc.tuple(
      fc.constantFrom('GET', 'PUT', 'DELETE'),
      segment.map((k) => `/session/data/${k}`),
    ),
  );
  const anything = fc.tuple(
    fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE') },
      { weight: 1, arbitrary: fc.constantFrom(...METHODS_KNOWN) },
    ),
    paths,
  );
  return fc
    .record({
      target: fc.oneof({ weight: 3, arbitrary: routed }, { weight: 2, arbitrary: anything }),
      chunked: fc.boolean(),
      body: fc.option(bodies, { nil: undefined, freq: 4 }),
      headers: fc
        .tuple(
          optional('cookie', cookie),
          optional('content-type', contentTypes),
          optional('x-security-key', fc.oneof(tokenShaped, headerText())),
          optional('sec-x-viur-staticskey', fc.oneof(tokenShaped, headerText())),
          optional(
            'authorization',
            fc.oneof(
              headerText(),
              tokenShaped.map((t) => `Bearer ${t}.${t}.${t}`),
              fc.constant('Bearer '),
            ),
          ),
          optional('origin', fc.oneof(fc.constantFrom('null', 'https://evil.example', `http://${base.host}`), headerText(40))),
          optional('sec-fetch-site', fc.constantFrom('cross-site', 'same-site', 'same-origin', 'none')),
          optional('x-forwarded-host', fc.oneof(fc.constant(base.host), headerText(40))),
          optional('x-cloud-trace-context', headerText(80)),
          optional('accept', headerText(40)),
        )
        .map((hs) => hs.filter((h): h is [string, string] => h !== undefined)),
    })
    .map(({ target: [method, path], ...rest }) => ({ method, path, ...rest }));
}

test(`${RUNS} hostile requests: no 5xx, the JSON error body on every refusal, and a session nobody held a key for is unchanged`, async () => {
  const http = new Client(base.origin);
  const first = await http.call('GET', '/session/security-key');
  const victimCookie = cookieOf(first);
  const staticKey = first.headers.get('sec-x-viur-staticskey')!;
  const known = { language: 'de', cart: [1, 2, { q: 3 }], 'ümlaut key': 'wert', nested: { a: null } };
  const put = await http.call('PATCH', '/session', { headers: { cookie: victimCookie, 'sec-x-viur-staticskey': staticKey }, body: known });
  expect(put.status).toBe(200);
  const storageKey = digest(victimCookie.split('=')[1]);
  const before = (await api.store.get(storageKey))!;
  expect(before.data).toEqual(known);

  const seen = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(hostile(victimCookie), async (spec) => {
      const res = await send(spec.method, spec.path, spec.headers, spec.body, spec.chunked);
      seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
      const what = `${spec.method} ${spec.path}`;
      expect(res.status).toBeLessThan(500);
      if (res.status >= 400 && spec.method !== 'HEAD') {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        let body: unknown;
        try {
          body = JSON.parse(res.text);
        } catch {
          body = undefined;
        }
        expect(problems({ status: res.status, headers, body, text: res.text }, what)).toEqual([]);
      }
    }),
    { numRuns: RUNS, verbose: 1 },
  );

  // Still alive, nothing polluted, nothing published.
  expect((await http.call('GET', '/healthz')).status).toBe(200);
  expect(Object.prototype).toEqual({});
  expect(({} as Record<string, unknown>).x).toBeUndefined();
  expect(published).toEqual([]);
  // The victim session: same data, user, static key and creation time. (Handing out more one-time
  // keys, GET /session/security-key, and touch need no key, so those parts may have changed.)
  const after = (await api.store.get(storageKey))!;
  expect(after).not.toBeNull();
  expect({ data: after.data, user: after.user, staticKeyDigest: after.staticKeyDigest, createdAt: after.createdAt }).toEqual({
    data: before.data,
    user: before.user,
    staticKeyDigest: before.staticKeyDigest,
    createdAt: before.createdAt,
  });
  expect((await http.call('GET', '/session', { headers: { cookie: victimCookie } })).body).toEqual({ user: null, data: known });
  process.stdout.write(`hostile HTTP: statuses ${JSON.stringify(Object.fromEntries([...seen].sort()))}\n`);
  // The runs did reach the routes that change data (not just 404s).
  expect((seen.get(403) ?? 0) + (seen.get(400) ?? 0) + (seen.get(415) ?? 0) + (seen.get(401) ?? 0)).toBeGreaterThan(RUNS / 3);
}, 180_000);

describe('the kill message parser', () => {
  const parses = (data: Buffer | string) => {
    try {
      const m = parseKillMessageData(data);
      // What it accepts is well-formed.
      if (m.kind === 'kill') {
        expect(m.user === null || (typeof m.user === 'string' && m.user.length > 0)).toBe(true);
        expect(m.issuedAt === undefined || !Number.isNaN(m.issuedAt.getTime())).toBe(true);
        expect(Number.isInteger(m.continuation) && m.continuation >= 0).toBe(true);
      } else if (m.kind === 'fanOut') {
        expect(
          m.users.length > 0 && m.users.length <= MAX_USERS_PER_MESSAGE && m.users.every((u) => typeof u === 'string' && u.length > 0),
        ).toBe(true);
      } else {
        expect(m.kind).toBe('cleanup');
      }
      return true;
    } catch (err) {
      if (!(err instanceof MalformedKillMessageError)) throw err;
      expect(err.code).toBe('malformed_kill_message');
      return false;
    }
  };

  test('arbitrary bytes never throw anything but MalformedKillMessageError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => void parses(Buffer.from(bytes))),
      { numRuns: 500 },
    );
  });

  test('arbitrary JSON, and objects shaped like kill messages with hostile values, likewise', () => {
    const value = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      unicode,
      fc.constant(null),
      fc.integer(),
      fc.double(),
      fc.array(unicode, { maxLength: 3 }),
    );
    const shaped = fc.dictionary(
      fc.oneof(fc.constantFrom('user', 'users', 'issuedAt', 'continuation', 'cleanup', '__proto__', 'constructor'), unicode),
      value,
      { maxKeys: 4 },
    );
    const dates = fc.oneof(
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom(
        '2026-02-30T00:00:00Z',
        '2026-01-01T25:00:00Z',
        '2026-01-01',
        '0000-00-00T00:00:00Z',
        '+275760-09-13T00:00:00.000Z',
        '2026-01-01T00:00:00+99:99',
      ),
      unicode,
    );
    const near = fc.record(
      {
        user: fc.oneof(fc.constant(null), unicode, fc.constant('x'.repeat(501)), fc.constant('__guest__')),
        issuedAt: dates,
        continuation: fc.oneof(fc.integer({ min: -2, max: 10_002 }), fc.double()),
      },
      { requiredKeys: [] },
    );
    const cleanup = fc.record({
      cleanup: fc.oneof(fc.constant({}), fc.record({ continuation: fc.oneof(fc.integer(), fc.double(), unicode) }), value),
    });
    const fanOut = fc.record({ users: fc.oneof(fc.array(unicode, { maxLength: 5 }), value), issuedAt: dates }, { requiredKeys: ['users'] });
    fc.assert(
      fc.property(
        fc.oneof(
          value,
          shaped,
          near,
          cleanup,
          fanOut,
          protoJson.map((t) => JSON.parse(t) as unknown),
        ),
        (v) => {
          const text = JSON.stringify(v) ?? 'null';
          parses(text);
          parses(Buffer.from(text));
          // validateKillMessage takes decoded values directly (as JSON.parse made them, __proto__ included).
          try {
            validateKillMessage(JSON.parse(text));
          } catch (err) {
            if (!(err instanceof MalformedKillMessageError)) throw err;
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  test('the envelope reader takes any event data without throwing', () => {
    fc.assert(
      fc.property(
        fc.anything({ maxDepth: 3, withNullPrototype: true, withObjectString: true }),
        fc.anything({ maxDepth: 2 }),
        (data, id) => {
          const m = receivedMessage({ specversion: '1.0', type: 't', source: 's', id, time: id, data } as unknown as Parameters<
            typeof receivedMessage
          >[0]);
          expect(typeof m.messageId).toBe('string');
          expect(m.data === undefined || Buffer.isBuffer(m.data)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});

export { ADMIN_EMAIL, AUDIENCE };
