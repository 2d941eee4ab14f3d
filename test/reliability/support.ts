/**
 * Helpers of the reliability tests: an HTTP client with a bounded wait, a TCP relay that can cut or
 * slow the connection to the store, a store on an emulator of the test's own, and the checks every
 * answer of the API must pass.
 */
import type { AddressInfo } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { Datastore, v1 } from '@google-cloud/datastore';
import { DatastoreSessionStore } from '../../lib/store/datastoreStore';

/** No single request may take longer than this: a hang fails the test instead of stalling it. */
export const REQUEST_BOUND_MS = 30_000;

export interface Answer {
  status: number;
  headers: Headers;
  /** Parsed JSON body, or undefined when the body is empty or not JSON. */
  body: unknown;
  text: string;
}

/** Calls a listening server over loopback; never waits longer than REQUEST_BOUND_MS. */
export class Client {
  constructor(readonly base: string) {}

  async call(
    method: string,
    path: string,
    options: { headers?: Record<string, string>; body?: unknown; raw?: string | Buffer } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    let body: string | Blob | undefined =
      options.raw === undefined || typeof options.raw === 'string' ? options.raw : new Blob([new Uint8Array(options.raw)]);
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(this.base + path, { method, headers, body, signal: AbortSignal.timeout(REQUEST_BOUND_MS) });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : (JSON.parse(text) as unknown);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  }
}

/** Starts listening on a loopback port (functions-framework's test server is created unbound). */
export async function listen(server: HttpServer): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** The cookie pair of the first Set-Cookie header. */
export function cookieOf(a: Answer): string {
  const set = a.headers.getSetCookie()[0];
  if (!set) throw new Error(`no Set-Cookie in ${a.status} ${a.text}`);
  return set.split(';')[0];
}

/** What every answer must satisfy: no 500, and any error is the JSON error body (503 with Retry-After). */
export function problems(a: Answer, what: string): string[] {
  const out: string[] = [];
  if (a.status >= 500 && a.status !== 503) out.push(`${what}: status ${a.status} ${a.text.slice(0, 200)}`);
  if (a.status >= 400) {
    const b = a.body as { error?: { code?: unknown; message?: unknown } } | undefined;
    const shapeOk =
      typeof b === 'object' &&
      b !== null &&
      Object.keys(b).length === 1 &&
      typeof b.error?.code === 'string' &&
      typeof b.error?.message === 'string' &&
      Object.keys(b.error).length === 2;
    if (!shapeOk) out.push(`${what}: ${a.status} without the JSON error body: ${a.text.slice(0, 200)}`);
    if (!(a.headers.get('content-type') ?? '').startsWith('application/json'))
      out.push(`${what}: ${a.status} with content-type ${a.headers.get('content-type')}`);
    if (/\bat .*\.(js|ts):\d+/.test(a.text)) out.push(`${what}: stack trace in the body`);
  }
  if (a.status === 503) {
    const code = (a.body as { error?: { code?: unknown } } | undefined)?.error?.code;
    if (code !== 'store_unavailable') out.push(`${what}: 503 with code ${String(code)}`);
    if (a.headers.get('retry-after') !== '1') out.push(`${what}: 503 without Retry-After`);
  }
  return out;
}

/** A store on the Datastore (Firestore) emulator at `port`, configured as the function would be. */
export function storeAt(port: number, timeoutMs: number, namespace?: string): { store: DatastoreSessionStore; datastore: Datastore } {
  const datastore = new Datastore({ projectId: 'session-test', apiEndpoint: `127.0.0.1:${port}` });
  return { datastore, store: new DatastoreSessionStore({ datastore, kind: 'viur-session', namespace, timeoutMs, separateBegin: true }) };
}

export { Relay } from '../support/relay';

/**
 * Runs `hook` synchronously when the next Datastore commit RPC of this process has succeeded, before
 * the client library sees the answer: a fault injected there lands between a commit and whatever the
 * request does next, the moment a write split over two commits would be caught half-way. It observes
 * the generated gRPC client (as countRpcs does) and replaces nothing. Returns the restore function.
 */
export function afterNextCommit(hook: () => void): () => void {
  const proto = v1.DatastoreClient.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const original = proto.commit;
  let fired = false;
  proto.commit = function (this: unknown, ...args: unknown[]) {
    const callback = args[args.length - 1];
    if (!fired && typeof callback === 'function') {
      args[args.length - 1] = (err: unknown, ...rest: unknown[]) => {
        if (!err && !fired) {
          fired = true;
          hook();
        }
        return (callback as (...a: unknown[]) => unknown)(err, ...rest);
      };
    }
    return original.apply(this, args);
  };
  return () => {
    proto.commit = original;
  };
}

/** Resident set size of a process, from /proc (Linux), in bytes. */
export function rssOf(pid: number): number {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const status = (require('node:fs') as typeof import('node:fs')).readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  if (!kb) throw new Error(`no VmRSS for ${pid}`);
  return Number(kb) * 1024;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `condition` holds; a bounded loop that fails with `what`. */
export async function until(
  what: string,
  condition: () => Promise<boolean> | boolean,
  timeoutMs = 60_000,
  intervalMs = 100,
): Promise<void> {
  const attempts = Math.ceil(timeoutMs / intervalMs);
  for (let i = 0; i < attempts; i++) {
    if (await condition()) return;
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for: ${what}`);
}
