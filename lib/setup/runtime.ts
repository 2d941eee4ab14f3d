import { existsSync } from 'node:fs';
import { type Clock, systemClock } from '../core/clock';
import { type Config, loadConfig } from './config';
import { credentialsGate, missingCredentialsHint } from './credentials';
import { cryptoRandom, type RandomSource } from '../core/ids';
import { pubSubEventPublisher } from '../events/publisher';
import { EventRelay } from '../events/relay';
import { log } from './log';
import { MemorySessionStore } from '../store/memoryStore';
import { ReadCachingStore } from '../store/readCache';
import { SessionManager } from '../core/manager';
import type { SessionStore } from '../store/sessionStore';

/** What every function needs, built once per process: the configuration, the store, the session manager, time and randomness. */
export interface Runtime {
  config: Config;
  store: SessionStore;
  sessions: SessionManager;
  clock: Clock;
  random: RandomSource;
  /** The session events' relay when SESSION_EVENTS_TOPIC is set (docs/events.md); undefined otherwise. */
  events?: EventRelay;
}

/**
 * The store the configuration names: a MemorySessionStore for SESSION_STORE=memory, else a
 * DatastoreSessionStore on the configured project, database, kind and namespace, behind the
 * credentials gate. The Datastore client is loaded here, on first use, so that a process on the
 * memory store never loads it.
 *
 * @example
 * const store = createStore(loadConfig()); // Datastore, unless SESSION_STORE=memory
 */
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
    separateBegin: config.datastoreEmulatorHost !== undefined && config.emulatorTransactions === 'separate-begin',
    ready: credentialsGate(datastore),
  });
}

/**
 * Everything a handler needs, from a configuration: the store (createStore(), or `parts.store`),
 * wrapped in the read cache when SESSION_READ_CACHE_MS > 0, and a SessionManager on it. The way
 * to use the library in your own service; tests pass their own store, clock and randomness.
 *
 * @example
 * const { sessions } = createRuntime(loadConfig());
 * const session = await sessions.load(req.headers.cookie);
 *
 * // a test: the memory store and a fixed clock
 * const rt = createRuntime(loadConfig({ SESSION_STORE: 'memory' }), { clock: { now: () => Date.parse('2026-01-01T12:00:00Z') } });
 */
export function createRuntime(config: Config, parts: Partial<Pick<Runtime, 'store' | 'clock' | 'random' | 'events'>> = {}): Runtime {
  const clock = parts.clock ?? systemClock;
  const base = parts.store ?? createStore(config);
  // Opt-in (SESSION_READ_CACHE_MS > 0): reads of this instance's sessions served from memory for that long.
  const store = config.readCacheMs > 0 ? new ReadCachingStore(base, { ttlMs: config.readCacheMs, clock }) : base;
  const random = parts.random ?? cryptoRandom;
  // Opt-in (SESSION_EVENTS_TOPIC): without it nothing of the outbox is written or read.
  const events =
    parts.events ??
    (config.eventsTopic === undefined
      ? undefined
      : new EventRelay({
          store: base,
          publisher: pubSubEventPublisher({ projectId: config.projectId, topic: config.eventsTopic }),
          clock,
        }));
  const sessions = new SessionManager({ store, settings: config.session, clock, random, ...(events ? { events } : {}) });
  return { config, store, clock, random, sessions, ...(events ? { events } : {}) };
}

let configured: Config | undefined;
let current: Runtime | undefined;

/**
 * Parses the environment once (at module load of the functions: a bad value stops the process
 * there). Warns when the store is the in-memory one, which is for local use only, and when no
 * credentials can be found outside Google Cloud.
 *
 * @example
 * const config = startupConfig(); // throws ConfigError for a bad variable
 */
export function startupConfig(): Config {
  if (!configured) {
    configured = loadConfig();
    if (configured.store === 'memory') {
      log(
        'WARNING',
        'SESSION_STORE=memory: sessions live in this process only and vanish on restart; use it for local development, never in production',
      );
    } else if (configured.datastoreEmulatorHost === undefined) {
      const hint = missingCredentialsHint(process.env, existsSync);
      if (hint) log('WARNING', hint);
    }
  }
  return configured;
}

/**
 * The process-wide runtime; the store is created on first call. What the three functions use.
 *
 * @example
 * const { sessions, config } = runtime();
 */
export function runtime(): Runtime {
  current ??= createRuntime(startupConfig());
  return current;
}

/**
 * Lets the local launcher and tests run the functions on a runtime they built (one shared store).
 * `undefined` forgets it: the next runtime() parses the environment again.
 *
 * @example
 * setRuntime(createRuntime(loadConfig({ SESSION_STORE: 'memory' })));
 */
export function setRuntime(next: Runtime | undefined): void {
  current = next;
  configured = next?.config;
}
