import { randomBytes } from 'node:crypto';
import type { Datastore } from '@google-cloud/datastore';
import type { Clock } from '../../lib/core/clock';
import { loadConfig, type Config } from '../../lib/setup/config';
import type { DatastoreSessionStore } from '../../lib/store/datastoreStore';
import { SessionManager } from '../../lib/core/manager';
import type { SessionSettings } from '../../lib/core/settings';
import { FakeClock } from './clock';
import { cryptoRandom } from '../../lib/core/ids';
import type { SessionStore } from '../../lib/store/sessionStore';

export { FakeClock } from './clock';

export function uniqueNamespace(prefix = 't'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/*
 * The Datastore client is required on first use, not imported: it takes a few hundred milliseconds
 * to load in every test file, and the tests without an emulator (the mutation run loads them once per
 * mutant) never use it.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const datastoreClient = () => require('@google-cloud/datastore') as typeof import('@google-cloud/datastore');

export function datastore(): Datastore {
  return new (datastoreClient().Datastore)({ projectId: process.env.GOOGLE_CLOUD_PROJECT });
}

export function datastoreStore(namespace = uniqueNamespace(), ds = datastore(), timeoutMs = 10_000): DatastoreSessionStore {
  const { DatastoreSessionStore } = require('../../lib/store/datastoreStore') as typeof import('../../lib/store/datastoreStore');
  return new DatastoreSessionStore({ datastore: ds, kind: 'viur-session', namespace, timeoutMs, separateBegin: true });
}
/* eslint-enable @typescript-eslint/no-require-imports */

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ GOOGLE_CLOUD_PROJECT: 'session-test', ...env });
}

export function settings(overrides: Partial<SessionSettings> = {}): SessionSettings {
  return { ...testConfig().session, ...overrides };
}

export function manager(store: SessionStore, clock: Clock = new FakeClock(), s: SessionSettings = settings()): SessionManager {
  return new SessionManager({ store, settings: s, clock, random: cryptoRandom });
}

/** Cookie header that sends back what a Set-Cookie header set. */
export function cookieFrom(setCookie: string | null | undefined): string {
  if (!setCookie) throw new Error('no Set-Cookie');
  return setCookie.split(';')[0];
}

const RPC_METHODS = [
  'lookup',
  'runQuery',
  'runAggregationQuery',
  'beginTransaction',
  'commit',
  'rollback',
  'allocateIds',
  'reserveIds',
] as const;
export type RpcCounts = Partial<Record<(typeof RPC_METHODS)[number], number>>;

/**
 * Counts Datastore round trips at the client's RPC level (the generated gRPC client every call
 * goes through). It observes and calls through; it does not replace anything.
 */
export function countRpcs(): { counts: RpcCounts; reset(): void; total(): number; restore(): void } {
  const proto = datastoreClient().v1.DatastoreClient.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const counts: RpcCounts = {};
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  for (const m of RPC_METHODS) {
    const original = proto[m];
    originals.set(m, original);
    proto[m] = function (this: unknown, ...args: unknown[]) {
      counts[m] = (counts[m] ?? 0) + 1;
      return original.apply(this, args);
    };
  }
  return {
    counts,
    reset: () => {
      for (const k of Object.keys(counts)) delete counts[k as keyof RpcCounts];
    },
    total: () => Object.values(counts).reduce((a, b) => a + (b ?? 0), 0),
    restore: () => {
      for (const [m, f] of originals) proto[m] = f;
    },
  };
}

/**
 * Counts the entities Datastore sends back to queries (RunQuery answers' entity results, every
 * page): what a query read, whatever its number of round trips. Observes the generated client's
 * callback and promise forms alike, and calls through.
 */
export function countQueriedEntities(): { readonly count: number; restore(): void } {
  const proto = datastoreClient().v1.DatastoreClient.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const original = proto.runQuery;
  const state = { count: 0 };
  const tally = (resp: unknown) => {
    const batch = (Array.isArray(resp) ? resp[0] : resp) as { batch?: { entityResults?: unknown[] } } | undefined;
    state.count += batch?.batch?.entityResults?.length ?? 0;
  };
  proto.runQuery = function (this: unknown, ...args: unknown[]) {
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      args[last] = (err: unknown, ...rest: unknown[]) => {
        if (!err) tally(rest[0]);
        return (callback as (...a: unknown[]) => unknown)(err, ...rest);
      };
      return original.apply(this, args);
    }
    const result = original.apply(this, args);
    if (result && typeof (result as Promise<unknown>).then === 'function') (result as Promise<unknown>).then(tally, () => undefined);
    return result;
  };
  return {
    get count() {
      return state.count;
    },
    restore: () => {
      proto.runQuery = original;
    },
  };
}
