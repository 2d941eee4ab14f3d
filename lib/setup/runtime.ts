import { existsSync } from 'node:fs';
import { type Clock, systemClock } from '../core/clock';
import { type Config, loadConfig } from './config';
import { credentialsGate, type GoogleClientLike, missingCredentialsHint } from './credentials';
import { cryptoRandom, type RandomSource } from '../core/ids';
import { log } from './log';
import { MemorySessionStore } from '../store/memoryStore';
import { ReadCachingStore } from '../store/readCache';
import { SessionManager } from '../core/manager';
import type { SessionStore } from '../store/sessionStore';

/** What every function needs, built once per process. */
export interface Runtime {
  config: Config;
  store: SessionStore;
  sessions: SessionManager;
  clock: Clock;
  random: RandomSource;
}

/** The Datastore client is loaded here, on first use, so that a process on the memory store never loads it. */
export function createStore(config: Config): SessionStore {
  if (config.store === 'memory') return new MemorySessionStore();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Datastore } = require('@google-cloud/datastore') as typeof import('@google-cloud/datastore');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DatastoreSessionStore } = require('../store/datastoreStore') as typeof import('../store/datastoreStore');
  const datastore = new Datastore({ projectId: config.projectId, databaseId: config.databaseId });
  return new DatastoreSessionStore({
    datastore,
    kind: config.kind,
    namespace: config.namespace,
    timeoutMs: config.storeTimeoutMs,
    separateBegin: config.datastoreEmulatorHost !== undefined,
    ready: credentialsGate(datastore as unknown as GoogleClientLike),
  });
}

export function createRuntime(config: Config, parts: Partial<Pick<Runtime, 'store' | 'clock' | 'random'>> = {}): Runtime {
  const clock = parts.clock ?? systemClock;
  const base = parts.store ?? createStore(config);
  // Opt-in (SESSION_READ_CACHE_MS > 0): reads of this instance's sessions served from memory for that long.
  const store = config.readCacheMs > 0 ? new ReadCachingStore(base, { ttlMs: config.readCacheMs, clock }) : base;
  const random = parts.random ?? cryptoRandom;
  return { config, store, clock, random, sessions: new SessionManager({ store, settings: config.session, clock, random }) };
}

let configured: Config | undefined;
let current: Runtime | undefined;

/**
 * Parses the environment once (at module load of the functions: a bad value stops the process
 * there). Warns when the store is the in-memory one, which is for local use only.
 */
export function startupConfig(): Config {
  if (!configured) {
    configured = loadConfig();
    if (configured.store === 'memory') {
      log('WARNING', 'SESSION_STORE=memory: sessions live in this process only and vanish on restart; use it for local development, never in production');
    } else if (configured.datastoreEmulatorHost === undefined) {
      const hint = missingCredentialsHint(process.env, existsSync);
      if (hint) log('WARNING', hint);
    }
  }
  return configured;
}

/** The process-wide runtime; the store is created on first call. */
export function runtime(): Runtime {
  current ??= createRuntime(startupConfig());
  return current;
}

/** Lets the local launcher and tests run the functions on a runtime they built (one shared store). */
export function setRuntime(next: Runtime | undefined): void {
  current = next;
  configured = next?.config;
}
