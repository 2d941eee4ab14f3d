/**
 * Issue 26, findings 1 and 2: memory of the read cache and the cost of nested values. The memory
 * and CPU measurements run sessionApi as a functions-framework child process on the Firestore
 * emulator (the memory probe of the load test: a full GC, then heapUsed and external); the API
 * checks run the module that registers the functions in functions-framework's test server.
 *
 * The nested value is the review's `[[[]]]` repeated: 7 bytes of JSON text for three JSON values,
 * the densest shape in values per byte after `[]`, and about 20 times its text in heap once parsed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { digest } from '../../lib/core/ids';
import { emptyData, type JsonValue } from '../../lib/core/json';
import { MAX_DATA_NODES } from '../../lib/core/limits';
import { type ApiHarness, cookieOf as cookieOfResponse, newSession, startApi } from '../support/api';
import type { SessionStore } from '../../lib/store/sessionStore';
import { datastoreStore, uniqueNamespace } from '../support/fixtures';
import { ensureBuilt, type FunctionProcess, startFunction } from '../support/functionsFramework';
import { Client, cookieOf, problems, until } from './support';

const MiB = 1024 * 1024;

/** `n` × `[[[]]]`: 1 + 3n JSON values in 7n + 1 bytes. */
const nested = (n: number): JsonValue[] => Array.from({ length: n }, () => [[[]]]);
const idOf = (cookie: string) => cookie.slice(cookie.indexOf('=') + 1);

let api: ApiHarness;
const processes: FunctionProcess[] = [];

beforeAll(async () => {
  api = await startApi();
  ensureBuilt();
}, 180_000);
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  const { closePublishers } = await import('../../lib/jobs/killPublisher');
  await closePublishers();
});
beforeEach(() => {
  api.use();
});

const http = () => request(api.server);

/** A session started through the API: its cookie, a one-time key and the static key. */
async function started(): Promise<{ cookie: string; key: string; staticKey: string }> {
  const res = await http().get('/session/security-key').expect(200);
  return { cookie: cookieOfResponse(res), key: res.body.securityKey as string, staticKey: res.headers['sec-x-viur-staticskey'] };
}

/** Writes `data` into the session straight through the store, past the API's limits (data stored before a limit existed). */
async function storeData(store: SessionStore, cookie: string, data: Record<string, JsonValue>): Promise<void> {
  const key = digest(idOf(cookie));
  await store.update(key, (current) => ({
    writes: { put: [{ key, session: { ...current!, data: Object.assign(emptyData(), data) } }], delete: [] },
    result: null,
  }));
}

/** A sessionApi child process with the memory probe, on a namespace of its own. */
async function apiProcess(env: Record<string, string> = {}): Promise<{ fn: FunctionProcess; client: Client; namespace: string }> {
  const namespace = uniqueNamespace('nested');
  const fn = await startFunction('sessionApi', 'http', {
    SESSION_NAMESPACE: namespace,
    NODE_OPTIONS: `--expose-gc --max-old-space-size=512 --require ${join(__dirname, 'memoryProbe.js')}`,
    ...env,
  });
  processes.push(fn);
  return { fn, client: new Client(fn.url), namespace };
}

/** heapUsed + external of the child after a full GC (memoryProbe.js answers SIGUSR2 with a log line). */
async function liveMemory(fn: FunctionProcess): Promise<number> {
  const probes = () => fn.logs().filter((l) => l.message === 'memory probe');
  const before = probes().length;
  process.kill(fn.pid, 'SIGUSR2');
  await until('a memory probe line', () => probes().length > before, 10_000, 20);
  const line = probes().at(-1)!;
  expect(line.gc).toBe(true);
  return Number(line.heapUsed) + Number(line.external);
}

/** CPU time (user + system) the process has used, in ms, from /proc (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** A fresh anonymous session: its cookie and its static key. */
async function fresh(client: Client): Promise<{ cookie: string; staticKey: string }> {
  const res = await client.call('GET', '/session/security-key');
  expect(res.status).toBe(200);
  return {
    cookie: cookieOf(res),
    staticKey: res.headers.get('sec-x-viur-staticskey')!,
  };
}

describe('1. the read cache keeps what it counts', () => {
  test('40 fresh anonymous sessions each PUT a nested value of 231 KB (within every limit) with the cache on: memory stays within the bound', async () => {
    const { fn, client } = await apiProcess({ SESSION_READ_CACHE_MS: '60000' });
    const value = nested(33_000); // 99,001 JSON values, 231,001 bytes
    const answers: Array<{
      what: string;
      answer: Awaited<ReturnType<Client['call']>>;
    }> = [];
    let done = 0;
    const round = async (sessions: number) => {
      for (let i = 0; i < sessions; i++, done++) {
        const s = await fresh(client);
        const headers = {
          cookie: s.cookie,
          'sec-x-viur-staticskey': s.staticKey,
        };
        answers.push({
          what: 'PUT',
          answer: await client.call('PUT', '/session/data/v', {
            headers,
            body: value,
          }),
        });
        const read = await client.call('GET', '/session', { headers });
        answers.push({ what: 'GET', answer: { ...read, text: '' } });
        expect((read.body as { data: { v: unknown[] } }).data.v).toHaveLength(33_000);
      }
    };
    await round(2); // warm-up
    const before = await liveMemory(fn);
    try {
      await round(40);
    } catch (err) {
      // Before the fix the process died here ("Reached heap limit"): show its last words.
      const fatal = /^.*(FATAL ERROR|heap limit).*$/m.exec(fn.output())?.[0];
      throw new Error(`${String(err)} after ${done} sessions; sessionApi: ${fatal ?? fn.output().slice(-600)}`, { cause: err });
    }
    const after = await liveMemory(fn);
    process.stdout.write(
      `read cache, 40 sessions × 231 KB nested: heap + external after GC ${(before / MiB).toFixed(1)} → ${(after / MiB).toFixed(1)} MiB\n`,
    );
    expect(answers.flatMap((a) => problems(a.answer, a.what))).toEqual([]);
    expect(answers.map((a) => a.answer.status).filter((s) => s !== 200)).toEqual([]);
    // The cache holds the 40 texts (9.2 MB) and nothing 20 times their size. Before the fix: +180 MiB
    // or more, and with a few more sessions "Reached heap limit".
    expect(after - before).toBeLessThan(24 * MiB);
    expect((await client.call('GET', '/healthz')).status).toBe(200);
  }, 180_000);
});

describe('2. a bound on the JSON values of the data', () => {
  const overBound = `session data would hold more than ${MAX_DATA_NODES} JSON values, the limit is ${MAX_DATA_NODES}`;

  test(`a change over the bound (${MAX_DATA_NODES} JSON values in all the data) is refused 413 too_large and changes nothing`, async () => {
    const { cookie, key } = await newSession(api.server);
    // Exactly at the bound: 1 + 3 × 33,333 = 100,000 values.
    const first = await http()
      .put('/session/data/a')
      .set('Cookie', cookie)
      .set('X-Security-Key', key)
      .send(nested((MAX_DATA_NODES - 1) / 3))
      .expect(200);
    const next = first.headers['x-security-key'];
    // One value more, under another key: over the bound in all.
    const over = await http().put('/session/data/b').set('Cookie', cookie).set('X-Security-Key', next).type('json').send('1');
    expect([over.status, over.body]).toEqual([413, { error: { code: 'too_large', message: overBound } }]);
    expect(over.headers['content-type']).toMatch(/^application\/json/);
    // A PATCH over it in all, and a single value over it on an empty session.
    const patch = await http()
      .patch('/session')
      .set('Cookie', cookie)
      .set('X-Security-Key', next)
      .send({ c: nested(10), d: [1, 2] });
    expect([patch.status, patch.body]).toEqual([413, { error: { code: 'too_large', message: overBound } }]);
    const empty = await newSession(api.server);
    const single = await http()
      .put('/session/data/x')
      .set('Cookie', empty.cookie)
      .set('X-Security-Key', empty.key)
      .send(nested(Math.ceil(MAX_DATA_NODES / 3))); // 100,003 values
    expect([single.status, single.body]).toEqual([413, { error: { code: 'too_large', message: overBound } }]);
    // Nothing changed, and the one-time keys were not consumed.
    expect(Object.keys((await http().get('/session').set('Cookie', cookie).expect(200)).body.data as object)).toEqual(['a']);
    expect((await http().get('/session').set('Cookie', empty.cookie).expect(200)).body.data).toEqual({});
    await http().delete('/session/data/a').set('Cookie', cookie).set('X-Security-Key', next).expect(204);
    await http().put('/session/data/x').set('Cookie', empty.cookie).set('X-Security-Key', empty.key).send([1]).expect(200);
  });

  test('a session stored over the bound (before it existed) still reads; a change that leaves it over is refused, deleting keys works', async () => {
    const { cookie, staticKey } = await started();
    await storeData(api.store, cookie, { big: nested(111_000), small: 1 }); // 333,002 values
    const read = await http().get('/session').set('Cookie', cookie).expect(200);
    expect([(read.body.data.big as unknown[]).length, read.body.data.small]).toEqual([111_000, 1]);
    const one = await http().get('/session/data/big').set('Cookie', cookie).expect(200);
    expect((one.body.value as unknown[]).length).toBe(111_000);
    const change = (method: 'put' | 'delete', k: string) =>
      http()[method](`/session/data/${k}`).set('Cookie', cookie).set('Sec-X-ViUR-StaticSKey', staticKey).type('json').send('2');
    const refused = await change('put', 'other');
    expect([refused.status, refused.body]).toEqual([413, { error: { code: 'too_large', message: overBound } }]);
    expect((await change('delete', 'small')).status).toBe(204);
    expect((await change('delete', 'big')).status).toBe(204);
    expect((await change('put', 'other')).status).toBe(200);
    await http()
      .get('/session')
      .set('Cookie', cookie)
      .expect(200, { user: null, data: { other: 2 } });
  });

  test('no deep copy of what was just parsed: reads answer the parsed data, PUT and PATCH store the parsed body', async () => {
    const { cookie, staticKey } = await started();
    const headers = { Cookie: cookie, 'Sec-X-ViUR-StaticSKey': staticKey };
    const clone = jest.spyOn(globalThis, 'structuredClone');
    try {
      await http().put('/session/data/v').set(headers).send(nested(1000)).expect(200);
      await http()
        .patch('/session')
        .set(headers)
        .send({ w: nested(10) })
        .expect(200);
      expect((await http().get('/session').set(headers).expect(200)).body.data.v).toHaveLength(1000);
      expect((await http().get('/session/data/w').set(headers).expect(200)).body.value).toHaveLength(10);
      expect(clone).not.toHaveBeenCalled();
    } finally {
      clone.mockRestore();
    }
  });

  test('CPU per GET and per PATCH: nested vs flat data of the same byte size (printed, not asserted)', async () => {
    const { fn, client, namespace } = await apiProcess();
    const store = datastoreStore(namespace);
    const BYTES = 777_000;
    const flat = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${String(i).padStart(5, '0')}`, 'x'.repeat(65)]));
    // The most values the bound lets nested data hold, padded with a string to the same size.
    const allowed = { v: nested((MAX_DATA_NODES - 2) / 3), pad: '' };
    allowed.pad = 'x'.repeat(BYTES - JSON.stringify(allowed).length);
    // The review's value: 333,001 values in 777 KB, stored directly (the API refuses it now).
    const review = { v: nested(111_000) };
    const shapes: Array<[string, Record<string, JsonValue>, 'api' | 'store']> = [
      ['flat, 10,000 keys of 65 characters', flat, 'api'],
      [`nested, ${MAX_DATA_NODES} values + a string`, allowed, 'api'],
      ["the review's nested value, 333,001 values", review, 'store'],
    ];
    const lines: string[] = [];
    /** CPU of the API process per call of `run`, in ms, over `n` calls after 3 for warm-up. */
    const cpuPer = async (n: number, run: () => Promise<void>) => {
      for (let i = 0; i < 3; i++) await run();
      const t0 = cpuMs(fn.pid);
      for (let i = 0; i < n; i++) await run();
      return ((cpuMs(fn.pid) - t0) / n).toFixed(1);
    };
    for (const [name, data, via] of shapes) {
      const s = await fresh(client);
      const headers = { cookie: s.cookie, 'sec-x-viur-staticskey': s.staticKey };
      const patch = async () => expect((await client.call('PATCH', '/session', { headers, body: data })).status).toBe(200);
      if (via === 'api') await patch();
      else await storeData(store, s.cookie, data);
      const get = async () => {
        const res = await client.call('GET', '/session', { headers: { cookie: s.cookie } });
        expect([res.status, res.text.length]).toEqual([200, JSON.stringify({ user: null, data }).length + 1]);
      };
      const perGet = await cpuPer(30, get);
      const perPatch = via === 'api' ? `${await cpuPer(10, patch)} ms per PATCH of it` : 'PATCH refused now';
      lines.push(`${name} (${JSON.stringify(data).length} bytes): ${perGet} ms per GET, ${perPatch}`);
    }
    process.stdout.write(`sessionApi CPU (user + system), no read cache:\n  ${lines.join('\n  ')}\n`);
    expect(lines).toHaveLength(3);
  }, 240_000);
});
