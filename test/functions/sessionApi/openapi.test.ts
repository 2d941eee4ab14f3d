/**
 * docs/openapi.yaml and docs/openapi-cleanup.yaml: valid OpenAPI 3.1, the same routes and methods
 * as the route tables, every error code the code can produce, and real answers that conform —
 * including the ones no other test asks for (unknown paths, other methods, HEAD, preflights) and
 * startClearSessions'. Every other API test validates its own answers through test/support/api.ts.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OutgoingHttpHeaders } from 'node:http';
import request from 'supertest';
import { StoreUnavailableError } from '../../../lib/core/errors';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import type { SessionStore } from '../../../lib/store/sessionStore';
import { ROUTES } from '../../../functions/sessionApi/routes';
import { newSession, startApi, type ApiHarness } from '../../support/api';
import {
  type Answer,
  answerOf,
  CLEANUP_DOCUMENT,
  cleanupDocument,
  type OpenApiDocument,
  SESSION_API_DOCUMENT,
  sessionApiDocument,
  watchServer,
} from '../../support/openapi';

const ROOT = join(__dirname, '..', '..', '..');
const doc = () => sessionApiDocument();

let api: ApiHarness;

beforeAll(async () => {
  api = await startApi();
});
beforeEach(() => {
  api.use();
});

/** Every `.ts` file under a directory of the repository. */
function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(ROOT, dir, f));
}

/** The (status, code) pairs the code can answer with: every `new HttpError(status, 'code'` and every SessionError subclass. */
function codesIn(files: string[]): Array<{ status: number; code: string; file: string }> {
  const found: Array<{ status: number; code: string; file: string }> = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/new HttpError\(\s*(\d{3}),\s*'([a-z_]+)'/g)) found.push({ status: Number(m[1]), code: m[2], file });
    for (const m of text.matchAll(/super\('([a-z_]+)',[^;]*?,\s*(\d{3})\);/g)) found.push({ status: Number(m[2]), code: m[1], file });
  }
  return found;
}

function enumOf(d: OpenApiDocument): string[] {
  return d.resolve(['components', 'schemas', 'ErrorCode']).value.enum as string[];
}

/** The error bodies with `code` that some response of the document with this status accepts. */
function acceptsCode(d: OpenApiDocument, status: number, code: string): boolean {
  const tables: string[][] = [
    ['x-unknown-path', 'responses'],
    ['x-other-method', 'responses'],
  ];
  for (const [template, item] of Object.entries(d.paths)) {
    for (const method of Object.keys(item)) if (method !== 'parameters') tables.push(['paths', template, method, 'responses']);
  }
  return tables.some((table) => {
    const responses = (d.doc as Record<string, unknown>)[table[0]] === undefined ? undefined : d.resolve(table).value;
    if (responses?.[String(status)] === undefined) return false;
    const { value: response, pointer } = d.resolve([...table, String(status)]);
    if (!(response.content as Record<string, unknown> | undefined)?.['application/json']) return false;
    return d.schemaAt([...pointer, 'content', 'application/json', 'schema'])({ error: { code, message: 'm' } });
  });
}

describe('the documents', () => {
  test('are valid OpenAPI 3.1 by the official schema, and every $ref resolves (@seriousme/openapi-schema-validator)', () => {
    // The validator is an ES module; jest runs CommonJS, so it runs in a child process of its own.
    const script = `
      import { Validator } from '@seriousme/openapi-schema-validator';
      const results = [];
      for (const file of process.argv.slice(1)) {
        const validator = new Validator();
        const result = await validator.validate(file);
        results.push({ file, version: validator.version, ...result });
      }
      console.log(JSON.stringify(results));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, SESSION_API_DOCUMENT, CLEANUP_DOCUMENT], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toEqual([
      { file: SESSION_API_DOCUMENT, version: '3.1', valid: true },
      { file: CLEANUP_DOCUMENT, version: '3.1', valid: true },
    ]);
  });

  test('every schema compiles as JSON Schema 2020-12 in ajv strict mode (no unknown keyword, no OpenAPI 3.0 leftovers)', () => {
    for (const d of [doc(), cleanupDocument()]) {
      const components = d.doc.components as Record<string, Record<string, Record<string, unknown>>>;
      for (const name of Object.keys(components.schemas ?? {})) expect(() => d.schemaAt(['components', 'schemas', name])).not.toThrow();
      for (const name of Object.keys(components.headers ?? {})) d.schemaAt(['components', 'headers', name, 'schema']);
      for (const name of Object.keys(components.parameters ?? {})) d.schemaAt(['components', 'parameters', name, 'schema']);
      // Inline schemas of operations: request bodies, parameters, responses.
      for (const [template, item] of Object.entries(d.paths)) {
        for (const [method, op] of Object.entries(item)) {
          if (method === 'parameters') continue;
          const operation = op as Record<string, Record<string, Record<string, unknown>>>;
          for (const media of Object.keys(operation.requestBody?.content ?? {})) {
            d.schemaAt(['paths', template, method, 'requestBody', 'content', media, 'schema']);
          }
          for (const [status, response] of Object.entries(operation.responses)) {
            if ((response as { $ref?: string }).$ref) continue;
            for (const media of Object.keys((response as { content?: object }).content ?? {})) {
              d.schemaAt(['paths', template, method, 'responses', status, 'content', media, 'schema']);
            }
          }
        }
      }
    }
  });

  test('every route of ROUTES is a path with the same methods, and every path is a route; every path answers OPTIONS', () => {
    const routes = Object.fromEntries(ROUTES.map((r) => [r.template, Object.keys(r.methods).sort()]));
    const documented = Object.fromEntries(Object.keys(doc().paths).map((t) => [t, doc().methodsOf(t).sort()]));
    expect(documented).toEqual(routes);
    for (const template of Object.keys(doc().paths)) expect(doc().paths[template].options).toBeDefined();
  });

  test('path parameters are declared for exactly the names in each template, and each route pattern matches its template', () => {
    for (const route of ROUTES) {
      const names = [...route.template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      const item = doc().paths[route.template];
      const declared = ((item.parameters as Array<{ $ref?: string }> | undefined) ?? [])
        .map((p, i) => doc().resolve(['paths', route.template, 'parameters', String(i)]).value)
        .filter((p) => p.in === 'path')
        .map((p) => p.name as string)
        .sort();
      expect([route.template, declared]).toEqual([route.template, names]);
      const sample = route.template.replace(/\{[^}]+\}/g, 'x1');
      expect([route.template, route.pattern.test(sample), doc().templateOf(sample)]).toEqual([route.template, true, route.template]);
    }
  });

  test('the error code enum is every code the code can answer with, no more; each with the status it is answered with', () => {
    const body = codesIn([join(ROOT, 'functions', 'http', 'body.ts')]);
    const cleanup = codesIn([join(ROOT, 'functions', 'startClearSessions.ts')]);
    const api = codesIn([
      ...sources('functions').filter((f) => !f.endsWith('startClearSessions.ts')),
      join(ROOT, 'lib', 'core', 'errors.ts'),
    ])
      // The library's own conflict code: withSession(), which the API uses, re-runs instead (docs/api.md#errors).
      .filter((c) => c.code !== 'security_key_used');
    expect(body.length).toBeGreaterThan(3);
    expect(cleanup.map((c) => c.code).sort()).toEqual(['continuation_unavailable', 'method_not_allowed', 'store_unavailable']);
    // The body reader serves both functions: its codes are in both documents.

    const unique = (codes: Array<{ code: string }>) => [...new Set(codes.map((c) => c.code))].sort();
    expect([...enumOf(doc())].sort()).toEqual(unique(api));
    expect([...enumOf(cleanupDocument())].sort()).toEqual(unique([...body, ...cleanup]));
    for (const { status, code, file } of api)
      expect([file, status, code, acceptsCode(doc(), status, code)]).toEqual([file, status, code, true]);
    for (const { status, code, file } of [...body, ...cleanup]) {
      expect([file, status, code, acceptsCode(cleanupDocument(), status, code)]).toEqual([file, status, code, true]);
    }
    // The prose lists the same codes.
    const prose = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');
    for (const code of [...enumOf(doc()), ...enumOf(cleanupDocument()), 'security_key_used']) expect(prose).toContain(`| \`${code}\` |`);
  });
});

describe('the validator', () => {
  const json = (status: number, body: unknown, headers: OutgoingHttpHeaders = {}): Omit<Answer, 'method' | 'url'> => ({
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', vary: 'Origin', ...headers },
    body: `${JSON.stringify(body)}\n`,
  });
  const problems = (method: string, url: string, answer: Omit<Answer, 'method' | 'url'>) => doc().problems({ method, url, ...answer });
  const KEY = 'a'.repeat(43);

  test('passes conforming answers', () => {
    expect(problems('GET', '/healthz', json(200, { status: 'ok' }))).toEqual([]);
    expect(problems('HEAD', '/healthz', { ...json(200, { status: 'ok' }), body: '' })).toEqual([]);
    expect(problems('GET', '/session/', json(200, { user: null, data: {} }))).toEqual([]);
    expect(problems('PUT', '/session/data/a%2Fb', json(200, { key: 'a/b', value: [1, { x: null }] }, { 'x-security-key': KEY }))).toEqual(
      [],
    );
    expect(problems('DELETE', '/healthz', json(405, { error: { code: 'method_not_allowed', message: 'm' } }, { allow: 'GET' }))).toEqual(
      [],
    );
    expect(problems('GET', '/nope', json(404, { error: { code: 'not_found', message: 'm' } }))).toEqual([]);
  });

  test('reports an undocumented status, a wrong content type, a body off its schema, an unknown code', () => {
    expect(problems('GET', '/healthz', json(201, { status: 'ok' }))).toEqual([expect.stringMatching(/status 201 is not documented/)]);
    const html = json(200, { status: 'ok' });
    html.headers['content-type'] = 'text/html';
    expect(problems('GET', '/healthz', html)).toEqual([expect.stringMatching(/Content-Type "text\/html" is not one of application\/json/)]);
    expect(problems('GET', '/healthz', json(200, { status: 'ko' }))).toEqual([expect.stringMatching(/body .*must be equal to constant/)]);
    expect(problems('GET', '/session', json(200, { user: 1, data: {} }))).toEqual([expect.stringMatching(/user must be string,null/)]);
    expect(problems('GET', '/session', json(400, { error: { code: 'teapot', message: 'm' } }))).not.toEqual([]);
    expect(problems('GET', '/session', json(400, { error: { code: 'csrf', message: 'm' } }))).not.toEqual([]);
    expect(problems('GET', '/session', { ...json(200, { user: null, data: {} }), body: 'not json' })).toEqual([
      expect.stringMatching(/the body is not JSON/),
    ]);
    expect(problems('DELETE', '/session/data/k', { ...json(204, {}), body: '{}' })).toEqual([expect.stringMatching(/a body where none/)]);
  });

  test('reports missing required headers, malformed ones, and API headers where the document has none', () => {
    const noCache = json(200, { user: null, data: {} });
    delete noCache.headers['cache-control'];
    expect(problems('GET', '/session', noCache)).toEqual([expect.stringMatching(/required header Cache-Control is missing/)]);
    const unavailable = json(503, { error: { code: 'store_unavailable', message: 'm' } });
    expect(problems('GET', '/session', unavailable)).toEqual([expect.stringMatching(/required header Retry-After is missing/)]);
    expect(problems('DELETE', '/healthz', json(405, { error: { code: 'method_not_allowed', message: 'm' } }))).toEqual([
      expect.stringMatching(/required header Allow is missing/),
    ]);
    expect(
      problems('DELETE', '/healthz', json(405, { error: { code: 'method_not_allowed', message: 'm' } }, { allow: 'GET, POST' })),
    ).toEqual([expect.stringMatching(/allow: GET, POST, but the document has GET/)]);
    // An error never carries a cookie or a key.
    const csrf = json(403, { error: { code: 'csrf', message: 'm' } }, { 'set-cookie': [`c=${KEY}; Path=/; HttpOnly; Secure`] });
    expect(problems('POST', '/session/reset', csrf)).toEqual([expect.stringMatching(/the header set-cookie is not documented here/)]);
    expect(problems('GET', '/session', json(200, { user: null, data: {} }, { 'x-security-key': KEY }))).toEqual([
      expect.stringMatching(/x-security-key is not documented/),
    ]);
    // A cookie with a Domain, and a key of the wrong shape.
    const domain = json(200, { user: null, data: {} }, { 'set-cookie': [`c=${KEY}; Domain=example.com; Path=/; HttpOnly; Secure`] });
    expect(problems('PATCH', '/session', domain)).toEqual([expect.stringMatching(/header Set-Cookie/)]);
    expect(problems('PATCH', '/session', json(200, { user: null, data: {} }, { 'x-security-key': 'short' }))).toEqual([
      expect.stringMatching(/header X-Security-Key/),
    ]);
  });
});

describe('real answers', () => {
  const http = () => request(api.server);

  test('every answer of the harness is validated (the hook of test/support/api.ts)', async () => {
    const before = api.openapi.validated;
    sessionApiDocument().assert(answerOf(await http().get('/healthz').expect(200)));
    expect(api.openapi.validated).toBe(before + 1);
    expect(api.openapi.problems).toEqual([]);
  });

  test('unknown paths, other methods, HEAD, trailing slashes and preflights conform', async () => {
    const { cookie, key } = await newSession(api.server);
    await http().get('/nope').expect(404);
    await http().post('/').expect(404);
    await http().options('/session/nope').expect(404);
    await http().delete('/healthz').expect(405);
    await http().patch('/session/data/k').expect(405);
    await http().head('/session/touch').expect(405);
    await http().head('/session').set('Cookie', cookie).expect(200);
    await http().head('/healthz').expect(200);
    await http().get('/session/').set('Cookie', cookie).expect(200);
    await http().options('/session').expect(204);
    await http().options('/session/data/k').set('Origin', 'https://nobody.example').expect(204);
    await http().put('/session/data/k').set('Cookie', cookie).set('X-Security-Key', key).send({ v: 1 }).expect(200);
    await http()
      .get('/session/data/k')
      .set('Cookie', cookie)
      .expect(200, { key: 'k', value: { v: 1 } });
    await http().get('/session/data/__proto__').set('Cookie', cookie).expect(400);
    await http().post('/session/touch').set('Content-Type', 'application/json').send('{"broken').expect(400);
    await http().post('/nope').set('Content-Type', 'application/json; charset=latin1').send('{}').expect(415);
    expect(api.openapi.problems).toEqual([]);
  });

  test('the paths functions-framework answers itself (an empty 404) conform to x-framework-paths', async () => {
    for (const path of ['/favicon.ico', '/robots.txt']) expect((await http().get(path).expect(404)).text).toBe('');
    await http().post('/favicon.ico').expect(404);
    expect(api.openapi.problems).toEqual([]);
  });

  test('a store outage: 503 with Retry-After', async () => {
    const failing = new Proxy(new MemorySessionStore(), {
      get: (target, prop) => {
        const value: unknown = Reflect.get(target, prop);
        return typeof value === 'function' ? () => Promise.reject(new StoreUnavailableError()) : value;
      },
    }) as SessionStore;
    api.use({}, failing);
    await http().get('/session/security-key').expect(503);
    expect(api.openapi.problems).toEqual([]);
  });
});

describe('startClearSessions and docs/openapi-cleanup.yaml', () => {
  test('POST / reports, another method is 405, a bad body 400, an outage 503', async () => {
    const { getTestServer } = await import('@google-cloud/functions-framework/testing');
    const server = getTestServer('startClearSessions');
    const watch = watchServer(server, cleanupDocument());
    api.use({}, new MemorySessionStore());
    await request(server).post('/').expect(200);
    await request(server).post('/any/path').expect(200);
    await request(server).get('/').expect(405);
    await request(server).post('/favicon.ico').expect(404);
    await request(server).post('/').set('Content-Type', 'application/json').send('{"broken').expect(400);
    const failing = new Proxy(new MemorySessionStore(), {
      get: (target, prop) => {
        const value: unknown = Reflect.get(target, prop);
        return typeof value === 'function' ? () => Promise.reject(new StoreUnavailableError()) : value;
      },
    }) as SessionStore;
    api.use({}, failing);
    await request(server).post('/').expect(503);
    expect(watch.validated).toBe(6);
    expect(watch.take()).toEqual([]);
  });
});
