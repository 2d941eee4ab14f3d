/**
 * Issue 26, findings 1 and 2: memory of the read cache and the cost of nested values. The memory
 * measurement runs sessionApi as a functions-framework child process on the Firestore emulator (the
 * memory probe of the load test: a full GC, then heapUsed and external).
 *
 * The nested value is the review's `[[[]]]` repeated: 7 bytes of JSON text for three JSON values,
 * the densest shape in values per byte after `[]`, and about 20 times its text in heap once parsed.
 */
import { join } from 'node:path';
import type { JsonValue } from '../../lib/core/json';
import { uniqueNamespace } from '../support/fixtures';
import { ensureBuilt, type FunctionProcess, startFunction } from '../support/functionsFramework';
import { Client, cookieOf, problems, until } from './support';

const MiB = 1024 * 1024;

/** `n` × `[[[]]]`: 1 + 3n JSON values in 7n + 1 bytes. */
const nested = (n: number): JsonValue[] => Array.from({ length: n }, () => [[[]]]);

const processes: FunctionProcess[] = [];

beforeAll(() => {
  ensureBuilt();
}, 180_000);
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
});

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

/** A fresh anonymous session: its cookie and its static key. */
async function fresh(client: Client): Promise<{ cookie: string; staticKey: string }> {
  const res = await client.call('GET', '/session/security-key');
  expect(res.status).toBe(200);
  return { cookie: cookieOf(res), staticKey: res.headers.get('sec-x-viur-staticskey')! };
}

describe('1. the read cache keeps what it counts', () => {
  test('40 fresh anonymous sessions each PUT a nested value of 231 KB (within every limit) with the cache on: memory stays within the bound', async () => {
    const { fn, client } = await apiProcess({ SESSION_READ_CACHE_MS: '60000' });
    const value = nested(33_000); // 99,001 JSON values, 231,001 bytes
    const answers: Array<{ what: string; answer: Awaited<ReturnType<Client['call']>> }> = [];
    let done = 0;
    const round = async (sessions: number) => {
      for (let i = 0; i < sessions; i++, done++) {
        const s = await fresh(client);
        const headers = { cookie: s.cookie, 'sec-x-viur-staticskey': s.staticKey };
        answers.push({ what: 'PUT', answer: await client.call('PUT', '/session/data/v', { headers, body: value }) });
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
