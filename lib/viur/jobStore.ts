import { type Datastore, type Key, PropertyFilter } from '@google-cloud/datastore';
import { StoreUnavailableError } from '../core/errors';
import { MAX_COMMIT_MUTATIONS } from '../core/limits';
import type { KeyDeleter } from '../jobs/batchDelete';
import type { KeyPage, StorageKey } from '../store/sessionStore';
import { VIUR_SECURITY_KEY_KIND } from './constants';
import { type LookupResponse, lookupAll, rawKey, rawRequest } from './raw';

/**
 * What the kill and the cleanup delete in `viur` format, on the entities exactly as a ViUR 3.8 app
 * stores them (docs/viur-kill-cleanup.md). A StorageKey here is the entity's key name itself: the
 * session's cookie value, or the one-time key.
 */
export type ViurSessionSelector =
  /** Sessions whose stored `user` equals this string (`__guest__` for guests); null: every session. */
  | { kind: 'user'; user: string | null }
  /** Sessions whose `lastseen` (a double, Unix seconds) lies before this many Unix seconds. */
  | { kind: 'stale'; lastseenBefore: number };

/** One-time keys (`viur-securitykey`) whose `viur_until` lies before this time (ms since the epoch). */
export type ViurKeySelector = { kind: 'expiredKeys'; before: number };

/** How a ViurJobStore reaches the app's entities. */
export interface ViurJobStoreOptions {
  /** The Datastore client (its project and database are the app's). */
  datastore: Datastore;
  /** The app's session kind (SESSION_KIND, `viur-session`). */
  kind: string;
  /** The Datastore namespace; undefined for the default one (the only one ViUR 3.8 uses). */
  namespace?: string;
  /** Deadline of each query, lookup and commit (one try each: the engine retries); default 60 s. */
  timeoutMs?: number;
  /** Resolves once the client can make calls (credentials.ts); awaited before every call. */
  ready?: () => Promise<void>;
}

/**
 * Filter values of an IN query: Firestore in Datastore mode takes at most 30 (docs/viur-kill-cleanup.md).
 * The one-time keys of a batch of killed sessions are found with ceil(n / 30) such queries.
 */
const IN_VALUES = 30;
/** Keys per Lookup: the Datastore API's limit. */
const LOOKUP_KEYS = 1000;
/** gRPC codes that mean the store is down, slow or overloaded, not that the request was wrong. */
const UNAVAILABLE_CODES = new Set([1, 2, 4, 8, 10, 13, 14]);

/**
 * Keys-only queries and delete commits on a ViUR app's `viur-session` and `viur-securitykey`
 * entities, for the one batch-deletion engine (batchDelete): `sessions()` and `securityKeys()` are
 * its KeyDeleters; `existing()` finds which of a set of killed sessions a ViUR request has written
 * back. Failures the store reports as unavailable surface as StoreUnavailableError (the engine
 * retries those).
 *
 * @example
 * const jobs = new ViurJobStore({ datastore: new Datastore({ projectId: 'my-project' }), kind: 'viur-session' });
 * await batchDelete({ store: jobs.sessions(), selector: { kind: 'user', user: '__guest__' }, ...engineOptions });
 */
export class ViurJobStore {
  readonly #ds: Datastore;
  readonly #kind: string;
  readonly #namespace: string | undefined;
  readonly #gax: { timeout: number; retry: null };
  readonly #ready: () => Promise<void>;

  /**
   * A job store on `options.datastore`; nothing is called until the first query.
   *
   * @example
   * new ViurJobStore({ datastore, kind: 'viur-session', namespace: undefined, timeoutMs: 60_000 });
   */
  constructor(options: ViurJobStoreOptions) {
    this.#ds = options.datastore;
    this.#kind = options.kind;
    this.#namespace = options.namespace || undefined;
    // One RPC per try, as the native store's engine calls (docs/design/datastore-store.md).
    this.#gax = { timeout: options.timeoutMs ?? 60_000, retry: null };
    this.#ready = options.ready ?? (async () => undefined);
  }

  /**
   * The engine's view of the sessions. With `withSecurityKeys`, deleting a batch first deletes the
   * one-time keys bound to those sessions (`viur_session` = the cookie), then the sessions: a
   * failure half-way leaves the sessions, so the retried or redelivered kill finds them again.
   *
   * @example
   * await batchDelete({ store: jobs.sessions({ withSecurityKeys: true }), selector: { kind: 'user', user: null }, ...engineOptions });
   */
  sessions(options: { withSecurityKeys?: boolean } = {}): KeyDeleter<ViurSessionSelector> {
    return {
      findKeys: (selector, limit, cursor) => this.#findSessionKeys(selector, limit, cursor),
      deleteMany: async (keys) => {
        if (options.withSecurityKeys) await this.deleteBoundSecurityKeys(keys);
        await this.#delete(this.#kind, keys);
      },
    };
  }

  /**
   * The engine's view of the one-time keys (`viur-securitykey`).
   *
   * @example
   * await batchDelete({ store: jobs.securityKeys(), selector: { kind: 'expiredKeys', before: Date.now() - 300_000 }, ...engineOptions });
   */
  securityKeys(): KeyDeleter<ViurKeySelector> {
    return {
      findKeys: async (selector, limit, cursor) => {
        const query = this.#query(VIUR_SECURITY_KEY_KIND).filter(new PropertyFilter('viur_until', '<', new Date(selector.before)));
        return this.#page(query, limit, cursor);
      },
      deleteMany: (keys) => this.#delete(VIUR_SECURITY_KEY_KIND, keys),
    };
  }

  /**
   * Deletes the one-time keys bound to these sessions (`viur_session` IN the cookies, 30 values a
   * query), in commits of at most 500.
   *
   * @example
   * await jobs.deleteBoundSecurityKeys(['Q3ZpV…']); // the keys of that session are gone
   */
  async deleteBoundSecurityKeys(sessionKeys: StorageKey[]): Promise<void> {
    const chunks: StorageKey[][] = [];
    for (let i = 0; i < sessionKeys.length; i += IN_VALUES) chunks.push(sessionKeys.slice(i, i + IN_VALUES));
    const found = await Promise.all(
      chunks.map(async (chunk) => {
        const keys: StorageKey[] = [];
        let cursor: string | undefined;
        do {
          const query = this.#query(VIUR_SECURITY_KEY_KIND).filter(new PropertyFilter('viur_session', 'IN', chunk));
          const page = await this.#page(query, MAX_COMMIT_MUTATIONS, cursor);
          keys.push(...page.keys);
          cursor = page.cursor;
        } while (cursor !== undefined);
        return keys;
      }),
    );
    const all = found.flat();
    for (let i = 0; i < all.length; i += MAX_COMMIT_MUTATIONS)
      await this.#delete(VIUR_SECURITY_KEY_KIND, all.slice(i, i + MAX_COMMIT_MUTATIONS));
  }

  /**
   * Which of these session keys exist: Lookups of at most 1,000 keys with a property mask
   * (`lastseen` only), so a session's `data` never crosses the wire.
   *
   * @example
   * const back = await jobs.existing(killedKeys); // the sessions a ViUR request wrote back
   */
  async existing(keys: StorageKey[]): Promise<StorageKey[]> {
    const out: StorageKey[] = [];
    for (let i = 0; i < keys.length; i += LOOKUP_KEYS) {
      const page = keys.slice(i, i + LOOKUP_KEYS).map((name) => rawKey(this.#kind, name, this.#namespace));
      const found = await lookupAll(page, (pending) =>
        this.#call(() =>
          rawRequest<LookupResponse>(this.#ds, 'lookup', { keys: pending, propertyMask: { paths: ['lastseen'] } }, this.#gax),
        ),
      );
      for (const entity of found) {
        const name = entity.key?.path.at(-1)?.name;
        if (name) out.push(name);
      }
    }
    return out;
  }

  async #findSessionKeys(selector: ViurSessionSelector, limit: number, cursor: string | undefined): Promise<KeyPage> {
    let query = this.#query(this.#kind);
    if (selector.kind === 'stale') {
      // A double, as ViUR writes and queries it: an integer value would sort apart from the doubles.
      query = query.filter(new PropertyFilter('lastseen', '<', this.#ds.double(selector.lastseenBefore)));
    } else if (selector.user !== null) {
      query = query.filter(new PropertyFilter('user', '=', selector.user));
    }
    return this.#page(query, limit, cursor);
  }

  async #page(base: ReturnType<Datastore['createQuery']>, limit: number, cursor: string | undefined): Promise<KeyPage> {
    let query = base.select('__key__').limit(limit);
    if (cursor) query = query.start(cursor);
    const [entities, info] = await this.#call(() => this.#ds.runQuery(query, { gaxOptions: this.#gax }));
    const keys = (entities as Array<Record<symbol, Key>>).map((e) => e[this.#ds.KEY]!.name!);
    const exhausted = keys.length < limit || info.moreResults === 'NO_MORE_RESULTS';
    return exhausted || !info.endCursor ? { keys } : { keys, cursor: info.endCursor };
  }

  async #delete(kind: string, names: StorageKey[]): Promise<void> {
    if (names.length === 0) return;
    if (names.length > MAX_COMMIT_MUTATIONS) throw new RangeError(`at most ${MAX_COMMIT_MUTATIONS} keys per commit`);
    await this.#call(() =>
      this.#ds.delete(
        names.map((name) => this.#ds.key({ namespace: this.#namespace, path: [kind, name] })),
        this.#gax,
      ),
    );
  }

  #query(kind: string) {
    return this.#namespace === undefined ? this.#ds.createQuery(kind) : this.#ds.createQuery(this.#namespace, kind);
  }

  async #call<R>(fn: () => Promise<R>): Promise<R> {
    try {
      await this.#ready();
      return await fn();
    } catch (err) {
      const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
      if (typeof code === 'number' && !UNAVAILABLE_CODES.has(code)) throw err;
      throw new StoreUnavailableError(undefined, err);
    }
  }
}
