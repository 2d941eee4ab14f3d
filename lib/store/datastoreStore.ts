import { type Datastore, type Key, PropertyFilter, type Query, type Transaction } from '@google-cloud/datastore';
// The client's own proto conversions (not re-exported from its main module).
import { entity as dsEntity } from '@google-cloud/datastore/build/src/entity';
import { deviceHandle } from '../core/devices';
import type { OutboxRecord, SessionEvent } from '../core/events';
import { DataTooLargeError, StoreUnavailableError } from '../core/errors';
import { KeyedLock } from './keyedLock';
import { dataText, emptyData, type JsonValue, parseDataText, type SessionData } from '../core/json';
import { GUEST_USER, HEAD_PAGE, LIST_SCAN, MAX_COMMIT_MUTATIONS } from '../core/limits';
import type {
  Decision,
  FindKeysOptions,
  HeadPage,
  HeadRef,
  KeyPage,
  SessionHead,
  SessionSelector,
  SessionStore,
  StorageKey,
  StoredSession,
} from './sessionStore';

/** How a DatastoreSessionStore reaches its entities: the client, kind, namespace and deadlines. */
export interface DatastoreStoreOptions {
  /** The Datastore client (its project and database are the store's). */
  datastore: Datastore;
  /** The entity kind sessions are stored as (SESSION_KIND, `viur-session` by default). */
  kind: string;
  /** The kind of the session events' outbox records (docs/events.md); default `<kind>-outbox`. */
  outboxKind?: string;
  /** The Datastore namespace; undefined for the default one. */
  namespace?: string;
  /** Deadline of every Datastore call; past it the call is cancelled and StoreUnavailableError thrown. */
  timeoutMs: number;
  /**
   * Deadline of each keys-only query and delete commit of the batch engine (findKeys, deleteMany),
   * default 60 s: slow on a large backlog rather than broken, and retried by the engine
   * (docs/design/datastore-store.md).
   */
  engineTimeoutMs?: number;
  /** How often a contended transaction is tried in all. */
  maxAttempts?: number;
  /**
   * Open transactions with a separate beginTransaction call instead of letting the first lookup
   * open them: on whenever DATASTORE_EMULATOR_HOST is set, for the Firestore emulator's sake, unless
   * DATASTORE_EMULATOR_TRANSACTIONS=lookup (docs/design/datastore-store.md).
   */
  separateBegin?: boolean;
  /** Resolves once the client can make calls (credentials loaded, see credentials.ts); awaited before every call. */
  ready?: () => Promise<void>;
}

interface KeyProto {
  partitionId?: { namespaceId: string };
  path: Array<{ kind: string; name: string }>;
}

/** The part of a Lookup answer that is read here. */
interface LookupResponse {
  found?: Parameters<typeof dsEntity.formatArray>[0] | null;
  deferred?: unknown[] | null;
}

/** How often a lookup the store keeps deferring is sent before the read fails as unavailable. */
const LOOKUP_ATTEMPTS = 3;

/** The part of a RunQuery answer that is read here. */
interface RunQueryResponse {
  batch?: { entityResults?: Parameters<typeof dsEntity.formatArray>[0]; moreResults?: string; endCursor?: Uint8Array | string | null };
}

/**
 * Shape of the entity as Datastore holds it (names kept from ViUR where it had them). `data` is one
 * JSON text; sessions written before were an embedded entity of per-key JSON texts under
 * percent-encoded names, which still load and get the new shape on their next write.
 */
interface SessionEntity {
  data: string | Record<string, string> | null | undefined;
  user: string;
  lastseen: number;
  createdAt: Date;
  expiresAt: Date;
  staticSecurityKey: string;
  securityKeys: string[];
  endedAt?: Date | null;
  /** Absent on sessions written before it existed. */
  userAgent?: string | null;
  /** deviceHandle of the key, indexed: the device routes find a session by it. Absent on sessions written before it existed. */
  handle?: string;
  /** expiryKey of the key and expiresAt, indexed: the cleanup query's. Absent on sessions written before it existed. */
  expiry?: string;
  /** userExpiryKey of the user and expiresAt, indexed: the listing of a user's sessions. Absent on guests' and on sessions written before it existed. */
  userExpiry?: string;
}

/** An outbox record as stored: its events as one unindexed JSON text, its time indexed (the relay's query). */
interface OutboxEntity {
  createdAt: Date;
  events: string;
}

/** What is written: the client's Double wrapper keeps `lastseen` a double even at whole seconds. */
type WrittenEntity = Omit<SessionEntity, 'lastseen'> & { lastseen: unknown };

/**
 * Everything but `user`, `createdAt`, `handle`, `expiry` and `userExpiry` is excluded from indexes:
 * only what a query needs is indexed, and an unindexed string may be far longer than the 1,500 bytes
 * of an indexed one. `expiresAt` above all: every write moves it to a new maximum, and an indexed
 * value that only grows caps the kind near 500 writes per second (docs/capacity.md#the-hotspot);
 * the TTL policy works on it unindexed, the cleanup queries the sharded `expiry` and the listing of
 * a user's sessions `userExpiry`, whose values grow at as many places as there are users.
 */
const EXCLUDE_FROM_INDEXES = ['data', 'lastseen', 'expiresAt', 'staticSecurityKey', 'securityKeys[]', 'endedAt', 'userAgent'];

/**
 * The shards of the indexed expiry: 16, one per hex digit, so that its index grows at 16 places at
 * once (16 × 500 writes per second before the sequential-value limit binds, docs/capacity.md).
 */
const EXPIRY_SHARDS = '0123456789abcdef';

/**
 * The indexed `expiry` of a session: `<shard>:<expiresAt as an ISO 8601 UTC time>`, e.g.
 * `7:2026-12-02T15:04:05.000Z`. The shard is the storage key's first hex digit (keys are SHA-256
 * digests, so the shards fill evenly); a key that does not start with one (the contract tests' short
 * names) gets the digit its first character's code picks. ISO times of years 0–9999 have one width,
 * so within a shard the strings sort as the times do.
 */
function expiryKey(key: StorageKey, expiresAt: number): string {
  const first = key.charAt(0).toLowerCase();
  const shard = /^[0-9a-f]$/.test(first) ? first : EXPIRY_SHARDS.charAt(key.charCodeAt(0) % EXPIRY_SHARDS.length);
  return `${shard}:${new Date(expiresAt).toISOString()}`;
}

/**
 * The indexed `userExpiry` of a named user's session: `<length of the user id>:<user id>:<expiresAt
 * as an ISO 8601 UTC time>`. The length first, so that no user's prefix is the start of another's
 * (`2:ab:` and `4:ab:x:`); within a prefix the strings sort as the times do. Guests have none: their
 * sessions are never listed, and one shared prefix would be one sequential range again.
 */
function userExpiryKey(user: string, expiresAt: number): string {
  return `${user.length}:${user}:${new Date(expiresAt).toISOString()}`;
}

/** The listing's phases: the legacy query on (`user`, `expiresAt`), then `userExpiry`. */
const LISTING_PHASES = 2;

/**
 * Where the listing of a user's sessions stands, from its cursor `<phase>|<Datastore cursor within
 * the phase>`: phase 0 the legacy query, phase 1 the one on `userExpiry`.
 */
function phaseOf(cursor: string | undefined): { phase: number; cursor?: string } {
  if (cursor === undefined) return { phase: 0 };
  const bar = cursor.indexOf('|');
  const phase = Number(bar < 0 ? cursor : cursor.slice(0, bar));
  if (!Number.isInteger(phase) || phase < 0 || phase >= LISTING_PHASES) throw new RangeError('not a cursor of this listing');
  return bar < 0 || bar === cursor.length - 1 ? { phase } : { phase, cursor: cursor.slice(bar + 1) };
}

/** An entity a query with a property mask found: the properties asked for, and its key under the client's KEY symbol. */
type Found = Partial<SessionEntity> & Record<symbol, unknown>;

/** One page of one phase's query. */
interface PhasePage {
  items: Found[];
  cursor?: string;
}

/**
 * Fills one page of at most `limit` sessions from the listing's queries in turn, starting where
 * `cursor` says: the legacy query, then the one on `userExpiry`.
 */
async function phased(
  limit: number,
  cursor: string | undefined,
  run: (phase: number, limit: number, cursor: string | undefined) => Promise<PhasePage>,
): Promise<PhasePage> {
  const items: Found[] = [];
  let at = phaseOf(cursor);
  for (;;) {
    const page = await run(at.phase, limit - items.length, at.cursor);
    items.push(...page.items);
    if (page.cursor !== undefined) at = { phase: at.phase, cursor: page.cursor };
    else if (at.phase + 1 < LISTING_PHASES) at = { phase: at.phase + 1 };
    else return { items };
    if (items.length >= limit) return { items, cursor: `${at.phase}|${at.cursor ?? ''}` };
  }
}

/** The cleanup's queries: the legacy one on `expiresAt`, then one per shard of `expiry`. */
const EXPIRED_QUERIES = EXPIRY_SHARDS.length + 1;
/** In a cursor of the cleanup's queries: a query not started yet, and one that is done. */
const NOT_STARTED = '';
const DONE = '~';

/**
 * Where each of the cleanup's queries stands, as the engine's opaque cursor: one entry per query,
 * joined by `|` (Datastore cursors are base64, which has no `|`): NOT_STARTED, DONE, or the
 * Datastore cursor after what was returned.
 */
function expiredPositions(cursor: string | undefined): string[] {
  if (cursor === undefined) return Array.from({ length: EXPIRED_QUERIES }, () => NOT_STARTED);
  const positions = cursor.split('|');
  if (positions.length !== EXPIRED_QUERIES) throw new RangeError('not a cursor of the expired-session listing');
  return positions;
}

/**
 * Datastore refuses an entity over its size limit (1 MiB) with INVALID_ARGUMENT. The data limit
 * keeps well under it (see SESSION_MAX_DATA_BYTES, README.md#configuration); if it is reached
 * anyway, the write is refused as too large (413), never an internal error.
 */
const GRPC_INVALID_ARGUMENT = 3;
const ENTITY_TOO_LARGE = /too (big|large)|exceeds the maximum|longer than|maximum (allowed )?size/i;

/** The text a gRPC error gives its reason in: `details`, else the message. */
function errorText(err: unknown): string {
  const { details, message } = err as { details?: unknown; message?: unknown };
  const text = details ?? message;
  return typeof text === 'string' ? text : '';
}

/**
 * The properties a listing of a user's sessions fetches (a property mask on the query: neither an
 * index nor a projection is needed, and `data` never leaves the database). Must cover SessionHead
 * but its `user`, which is the value the listing filters on.
 */
const HEAD_PROPERTIES = ['lastseen', 'createdAt', 'expiresAt', 'endedAt', 'userAgent'];
/** What a lookup by handle fetches: the head with its user (the query's filter is the handle). */
const HANDLE_LOOKUP_PROPERTIES = [...HEAD_PROPERTIES, 'user'];
/** What the look-up of a handle among records written before handles were stored fetches. */
const LEGACY_HANDLE_PROPERTIES = [...HEAD_PROPERTIES, 'handle'];

const GRPC_ABORTED = 10;
const GRPC_DEADLINE_EXCEEDED = 4;
/** gRPC codes that mean the store is down, slow or overloaded, not that the request was wrong. */
const UNAVAILABLE_CODES = new Set([1, 2, 4, 8, 13, 14]);

/** Property names of the older embedded shape were percent-encoded (`%`, `.`, `[`, `]`). */
function dataKey(name: string): string {
  return name.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function toEntity(key: StorageKey, s: StoredSession, ds: Datastore): WrittenEntity {
  return {
    data: dataText(s.data),
    user: s.user ?? GUEST_USER,
    lastseen: ds.double(s.lastSeen / 1000),
    createdAt: new Date(s.createdAt),
    expiresAt: new Date(s.expiresAt),
    staticSecurityKey: s.staticKeyDigest,
    securityKeys: s.securityKeyDigests,
    userAgent: s.userAgent,
    handle: deviceHandle(key),
    expiry: expiryKey(key, s.expiresAt),
    ...(s.user === null ? {} : { userExpiry: userExpiryKey(s.user, s.expiresAt) }),
    ...(s.endedAt === undefined ? {} : { endedAt: new Date(s.endedAt) }),
  };
}

/** The older shape: an embedded entity, one JSON text per key, names percent-encoded. */
function legacyData(embedded: Record<string, string>): SessionData {
  const data: SessionData = emptyData();
  for (const [name, text] of Object.entries(embedded)) data[dataKey(name)] = JSON.parse(text) as JsonValue;
  return data;
}

function fromEntity(e: SessionEntity): StoredSession {
  const data = typeof e.data === 'string' ? parseDataText(e.data) : e.data ? legacyData(e.data) : emptyData();
  const stored: StoredSession = {
    data,
    user: e.user === GUEST_USER ? null : e.user,
    lastSeen: Math.round(Number(e.lastseen) * 1000),
    createdAt: new Date(e.createdAt).getTime(),
    expiresAt: new Date(e.expiresAt).getTime(),
    staticKeyDigest: e.staticSecurityKey,
    securityKeyDigests: e.securityKeys ?? [],
    userAgent: typeof e.userAgent === 'string' ? e.userAgent : null,
  };
  if (e.endedAt) stored.endedAt = new Date(e.endedAt).getTime();
  return stored;
}

/**
 * Enforces the commit's own deadline (as DEADLINE_EXCEEDED): the client's rollback of a failed
 * commit could otherwise hold it for 60 s (docs/design/datastore-store.md).
 */
function withDeadline<R>(call: Promise<R>, ms: number): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`deadline of ${ms} ms exceeded`), { code: GRPC_DEADLINE_EXCEEDED })), ms);
  });
  call.catch(() => undefined); // settles late when the deadline won; its outcome is already reported
  return Promise.race([call, expired]).finally(() => clearTimeout(timer));
}

/** `user` is the listing's own filter value, so the property mask need not fetch it. */
function headOf(e: Partial<SessionEntity>, user: string): SessionHead {
  const head: SessionHead = {
    user,
    lastSeen: Math.round(Number(e.lastseen) * 1000),
    createdAt: new Date(e.createdAt ?? 0).getTime(),
    expiresAt: new Date(e.expiresAt ?? 0).getTime(),
    userAgent: typeof e.userAgent === 'string' ? e.userAgent : null,
  };
  if (e.endedAt) head.endedAt = new Date(e.endedAt).getTime();
  return head;
}

function isAborted(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === GRPC_ABORTED;
}

/**
 * Sessions in Cloud Datastore / Firestore in Datastore mode, kind `viur-session` by default: the
 * production SessionStore. A read is one Lookup, a change one transaction (one lookup, one commit),
 * and changes to one session on this instance queue in a KeyedLock rather than contend in the
 * database. Failures of the store surface as StoreUnavailableError, an entity too large as
 * DataTooLargeError. Imported from `viur-session-functions/datastore-store` (it loads the
 * Datastore client); createStore() builds one from the configuration. The stored entity is
 * described in docs/storage.md; the design notes are in docs/design/datastore-store.md.
 *
 * @example
 * import { Datastore } from '@google-cloud/datastore';
 * import { DatastoreSessionStore } from 'viur-session-functions/datastore-store';
 *
 * const datastore = new Datastore({ projectId: 'my-project' });
 * const store = new DatastoreSessionStore({ datastore, kind: 'viur-session', timeoutMs: 5000 });
 * const { sessions } = createRuntime(loadConfig(), { store });
 */
export class DatastoreSessionStore implements SessionStore {
  readonly #ds: Datastore;
  readonly #kind: string;
  readonly #outboxKind: string;
  readonly #namespace: string | undefined;
  readonly #gax: { timeout: number };
  readonly #engineGax: { timeout: number; retry: null };
  readonly #maxAttempts: number;
  readonly #separateBegin: boolean;
  readonly #lock = new KeyedLock();
  readonly #ready: () => Promise<void>;

  /**
   * A store on `options.datastore`; nothing is called until the first read or write.
   *
   * @example
   * new DatastoreSessionStore({ datastore, kind: 'viur-session', namespace: 'shop', timeoutMs: 5000, separateBegin: true });
   */
  constructor(options: DatastoreStoreOptions) {
    this.#ds = options.datastore;
    this.#kind = options.kind;
    this.#outboxKind = options.outboxKind ?? `${options.kind}-outbox`;
    this.#namespace = options.namespace;
    this.#gax = { timeout: options.timeoutMs };
    // One RPC per engine try (the engine retries with its own backoff and budget); `retry: null`, not
    // `maxRetries: 1`, which broke every later RunQuery of the client (docs/design/datastore-store.md).
    this.#engineGax = { timeout: options.engineTimeoutMs ?? 60_000, retry: null };
    this.#maxAttempts = options.maxAttempts ?? 8;
    this.#separateBegin = options.separateBegin ?? false;
    this.#ready = options.ready ?? (async () => undefined);
  }

  #key(name: StorageKey): Key {
    return this.#ds.key({ namespace: this.#namespace, path: [this.#kind, name] });
  }

  /** The outbox record as a mutation: upserted, so a retried commit writes the same record again. */
  #outboxEntity(record: OutboxRecord): { key: Key; data: OutboxEntity; excludeFromIndexes: string[] } {
    return {
      key: this.#ds.key({ namespace: this.#namespace, path: [this.#outboxKind, record.id] }),
      data: { createdAt: new Date(record.createdAt), events: JSON.stringify(record.events) },
      excludeFromIndexes: ['events'],
    };
  }

  /**
   * One atomic commit of mutations that involve no read: a transaction opened with its own
   * beginTransaction (a non-transactional commit may apply only some of its mutations), so that
   * an outbox record is stored if and only if the change it describes is.
   */
  async #commitTogether(mutate: (txn: Transaction) => void, timeoutMs: number): Promise<void> {
    const txn = this.#ds.transaction();
    try {
      await this.#call(() => txn.run({ gaxOptions: { timeout: timeoutMs } }));
      mutate(txn);
      await this.#call(() => withDeadline(txn.commit({ timeout: timeoutMs }), timeoutMs));
    } catch (err) {
      await this.#release(txn);
      throw err;
    }
  }

  /** The protobuf key of a session, as `entity.keyToKeyProto` makes it, without a Key object in between. */
  #keyProto(name: StorageKey): KeyProto {
    const path = [{ kind: this.#kind, name }];
    return this.#namespace ? { partitionId: { namespaceId: this.#namespace }, path } : { path };
  }

  /**
   * The session stored under `key`, or null: one Lookup sent through the client's own request path,
   * not `Datastore.get`, whose wrappers cost more CPU than the call (docs/design/datastore-store.md).
   * Deferred keys are asked for again (at most 3 lookups in all; then StoreUnavailableError).
   *
   * @example
   * const stored = await store.get(digest(sessionId)); // StoredSession | null
   */
  async get(key: StorageKey): Promise<StoredSession | null> {
    const reqOpts = { keys: [this.#keyProto(key)] };
    for (let attempt = 1; ; attempt++) {
      const resp = await this.#call(() => this.#request<LookupResponse>('lookup', reqOpts));
      const found = resp.found ?? [];
      if (found.length > 0) return fromEntity(dsEntity.formatArray(found)[0] as SessionEntity);
      if ((resp.deferred ?? []).length === 0) return null;
      if (attempt >= LOOKUP_ATTEMPTS) throw new StoreUnavailableError(undefined, new Error('the lookup stayed deferred'));
    }
  }

  /**
   * Reads `key` in a transaction and commits what `decide` returns with it (SessionStore.update);
   * aborted transactions are retried with jittered backoff, up to `maxAttempts` tries in all. A null
   * key (a brand-new session) is one insert-only commit without a read.
   *
   * @example
   * const found = await store.update(key, (current) => {
   *   if (current === null) return { writes: null, result: false };
   *   return { writes: { put: [{ key, session: { ...current, lastSeen: Date.now() } }], delete: [] }, result: true };
   * });
   */
  async update<T>(key: StorageKey | null, decide: (current: StoredSession | null) => Decision<T>): Promise<T> {
    if (key === null) {
      // Nothing to read for a brand-new session: one non-transactional commit, insert-only so
      // that it can never overwrite an existing entity.
      const { writes, result } = decide(null);
      if (writes && writes.put.length > 0) {
        const entities = writes.put.map((p) => ({
          key: this.#key(p.key),
          data: toEntity(p.key, p.session, this.#ds),
          excludeFromIndexes: EXCLUDE_FROM_INDEXES,
          method: 'insert' as const,
        }));
        const outbox = writes.outbox;
        if (outbox) {
          await this.#commitTogether((txn) => {
            txn.insert(entities);
            txn.save(this.#outboxEntity(outbox));
          }, this.#gax.timeout);
        } else {
          await this.#call(() => this.#ds.save(entities, { timeout: this.#gax.timeout }));
        }
      }
      return result;
    }
    return this.#lock.run(key, () => this.#transact(key, decide));
  }

  async #transact<T>(key: StorageKey, decide: (current: StoredSession | null) => Decision<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      // Without run(), the client opens the transaction with the first lookup: one round trip
      // (docs/design/datastore-store.md).
      const txn = this.#ds.transaction();
      try {
        if (this.#separateBegin) await this.#call(() => txn.run({ gaxOptions: this.#gax }));
        const [entity] = (await this.#call(() => txn.get(this.#key(key), { gaxOptions: this.#gax }))) as [SessionEntity | undefined];
        const { writes, result } = decide(entity ? fromEntity(entity) : null);
        if (!writes || (writes.put.length === 0 && writes.delete.length === 0 && !writes.outbox)) {
          await this.#release(txn);
          return result;
        }
        for (const p of writes.put) {
          txn.save({ key: this.#key(p.key), data: toEntity(p.key, p.session, this.#ds), excludeFromIndexes: EXCLUDE_FROM_INDEXES });
        }
        txn.delete(writes.delete.map((k) => this.#key(k)));
        if (writes.outbox) txn.save(this.#outboxEntity(writes.outbox));
        await this.#call(() => withDeadline(txn.commit({ timeout: this.#gax.timeout }), this.#gax.timeout));
        return result;
      } catch (err) {
        await this.#release(txn);
        if (isAborted(err) && attempt < this.#maxAttempts) {
          // Jittered backoff so the contenders do not collide again in lock step.
          await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
          continue;
        }
        throw err;
      }
    }
  }

  /**
   * One page of the keys of the sessions `selector` matches, under the engine's deadline; the
   * batch-deletion engine pages through it. A user's sessions: one keys-only query on (`user`,
   * `createdAt`). Expired ones: the query on the indexed `expiresAt` that finds sessions written
   * before `expiry` existed, and one range query per shard of `expiry`
   * (docs/storage.md#queries-and-indexes), sent together, each for its share of the page; the
   * cursor holds where each of them stands.
   *
   * @example
   * const { keys, cursor } = await store.findKeys({ kind: 'expired', before: Date.now() - 300_000 }, 500);
   */
  async findKeys(selector: SessionSelector, limit: number, cursor?: string, options: FindKeysOptions = {}): Promise<KeyPage> {
    if (selector.kind === 'user') {
      // With a user: needs the composite index (user ASC, createdAt ASC) declared in terraform/datastore.tf.
      let query = this.#query();
      if (selector.user !== null) query = query.filter(new PropertyFilter('user', '=', selector.user));
      query = query.filter(new PropertyFilter('createdAt', '<=', new Date(selector.createdAtOrBefore))).order('createdAt');
      return this.#keyPage(query, limit, cursor, options);
    }
    // All unfinished queries at once, each for its share of the page: one round trip per page, and
    // the 16 shards (uniform by key) drain together. When a round finishes some queries, the others
    // are asked for the rest of the page in another round (a backlog left in few shards).
    const positions = expiredPositions(cursor);
    const found: KeyPage = { keys: [] };
    if (options.withUsers) found.users = [];
    for (let finished = true; finished && found.keys.length < limit;) {
      const left = limit - found.keys.length;
      // At most `left` of them (at least one key each), so the page never holds more than `limit`.
      const open = positions.flatMap((at, i) => (at === DONE ? [] : [i])).slice(0, left);
      if (open.length === 0) break;
      // Shares that add up to `left`, so that a page is full when no query runs out.
      const share = (n: number) => Math.floor(left / open.length) + (n < left % open.length ? 1 : 0);
      const pages = await Promise.all(
        open.map((i, n) => this.#keyPage(this.#expiredQuery(i, selector.before), share(n), positions[i] || undefined, options)),
      );
      finished = false;
      pages.forEach((page, n) => {
        found.keys.push(...page.keys);
        found.users?.push(...(page.users ?? []));
        positions[open[n]!] = page.cursor ?? DONE;
        if (page.cursor === undefined) finished = true;
      });
    }
    if (positions.some((at) => at !== DONE)) found.cursor = positions.join('|');
    return found;
  }

  /**
   * One of the cleanup's queries: 0 is `expiresAt` < T (sessions written before `expiry` existed;
   * none once they were all written again or deleted), s from 1 to 16 `"<digit>:"` <= `expiry` <
   * `"<digit>:<T>"` for the s-th hex digit. Built-in indexes only.
   */
  #expiredQuery(query: number, before: number): Query {
    if (query === 0)
      return this.#query()
        .filter(new PropertyFilter('expiresAt', '<', new Date(before)))
        .order('expiresAt');
    const digit = EXPIRY_SHARDS.charAt(query - 1);
    return this.#query()
      .filter(new PropertyFilter('expiry', '>=', `${digit}:`))
      .filter(new PropertyFilter('expiry', '<', expiryKey(digit, before)))
      .order('expiry');
  }

  /**
   * One page of at most `limit` keys of `query` from `cursor`: keys only, or with `user` through a
   * property mask (no further index, but an entity read per session instead of a keys-only read,
   * docs/events.md).
   */
  async #keyPage(query: Query, limit: number, cursor: string | undefined, options: FindKeysOptions): Promise<KeyPage> {
    query = query.limit(limit);
    if (cursor) query = query.start(cursor);
    if (options.withUsers) {
      const { found, cursor: next } = await this.#headQuery(query, ['user'], limit, this.#engineGax);
      const page: KeyPage = { keys: found.map((e) => this.#name(e)), users: found.map((e) => e.user ?? GUEST_USER) };
      if (next !== undefined) page.cursor = next;
      return page;
    }
    query = query.select('__key__');
    const [entities, info] = await this.#call(() => this.#ds.runQuery(query, { gaxOptions: this.#engineGax }));
    const keys = (entities as Array<Record<symbol, Key>>).map((e) => e[this.#ds.KEY]!.name!);
    const exhausted = keys.length < limit || info.moreResults === 'NO_MORE_RESULTS';
    return exhausted ? { keys } : { keys, cursor: info.endCursor };
  }

  /**
   * One page of `user`'s sessions expiring after `expiresAfter`, latest first, heads only: the range
   * `userExpiry` > "<user>:<T>" on its built-in index, descending, with a property mask; dead
   * sessions are not read. Sessions written before `userExpiry` existed are listed first by the
   * query they were found by then: `user` = U AND `expiresAt` > T (the composite index user ASC,
   * expiresAt DESC, which only they still have entries in). Both first queries go out together, so
   * the older one costs no wait; once every such session was written again or ended it finds none.
   * The client's runQuery has no property mask, so this sends the RunQuery request through the
   * client's own request path (same channel, auth, database and deadline) with one, and decodes the
   * answer with the client's own entity helpers.
   *
   * @example
   * const { sessions, cursor } = await store.listUserSessions('alice', Date.now(), 500);
   */
  async listUserSessions(user: string, expiresAfter: number, limit: number, cursor?: string): Promise<HeadPage> {
    const page = await this.#listing(user, expiresAfter, limit, cursor, HEAD_PROPERTIES);
    const sessions = page.items.map((e) => ({ key: this.#name(e), head: headOf(e, user) }));
    return page.cursor === undefined ? { sessions } : { sessions, cursor: page.cursor };
  }

  /**
   * The session of `user` that `handle` names, if it expires after `expiresAfter`: one query on
   * the indexed `handle` (Datastore's built-in index) that reads that session alone. Sessions
   * written before the handle was stored have none; when the query finds nothing, the first
   * LIST_SCAN (1,000) sessions of listUserSessions are looked through for one of them (two pages
   * at most, live sessions only). Their next write stores the handle.
   *
   * @example
   * const found = await store.findUserSession('alice', deviceId, Date.now()); // { key, head } or null
   */
  async findUserSession(user: string, handle: string, expiresAfter: number): Promise<HeadRef | null> {
    const query = this.#query()
      .filter(new PropertyFilter('handle', '=', handle))
      .limit(1);
    const { found } = await this.#headQuery(query, HANDLE_LOOKUP_PROPERTIES, 1);
    const [hit] = found;
    if (hit) {
      const head = headOf(hit, user);
      return hit.user === user && head.expiresAt > expiresAfter ? { key: this.#name(hit), head } : null;
    }
    let cursor: string | undefined;
    for (let seen = 0; seen < LIST_SCAN;) {
      const limit = Math.min(HEAD_PAGE, LIST_SCAN - seen);
      const page = await this.#listing(user, expiresAfter, limit, cursor, LEGACY_HANDLE_PROPERTIES);
      const legacy = page.items.find((e) => e.handle === undefined && deviceHandle(this.#name(e)) === handle);
      if (legacy) return { key: this.#name(legacy), head: headOf(legacy, user) };
      seen += page.items.length;
      if (page.cursor === undefined || page.items.length === 0) return null;
      cursor = page.cursor;
    }
    return null;
  }

  /**
   * One page of the listing of `user`'s live sessions (listUserSessions), `properties` fetched. On
   * the first page, the legacy query and the `userExpiry` one are sent together; when the legacy
   * one finds nothing (the rule once the migration is over), the other's answer is the page. A page
   * may then hold fewer than `limit` sessions and still have a cursor.
   */
  async #listing(user: string, expiresAfter: number, limit: number, cursor: string | undefined, properties: string[]): Promise<PhasePage> {
    const run = async (phase: number, left: number, at: string | undefined): Promise<PhasePage> => {
      const { found, cursor: next } = await this.#headQuery(this.#liveQuery(phase, user, expiresAfter, left, at), properties, left);
      return next === undefined ? { items: found } : { items: found, cursor: next };
    };
    if (cursor !== undefined) return phased(limit, cursor, run);
    const [legacy, current] = await Promise.all([run(0, limit, undefined), run(1, limit, undefined)]);
    if (legacy.cursor !== undefined) return { items: legacy.items, cursor: `0|${legacy.cursor}` };
    if (legacy.items.length === 0) return current.cursor === undefined ? current : { items: current.items, cursor: `1|${current.cursor}` };
    // Both exhausted within the page: one page of both; else the legacy sessions now, the rest from the start of phase 1.
    if (current.cursor === undefined && legacy.items.length + current.items.length <= limit)
      return { items: [...legacy.items, ...current.items] };
    return { items: legacy.items, cursor: '1|' };
  }

  /**
   * A user's live sessions, latest expiry first: phase 0 `user` = U AND `expiresAt` > T (sessions
   * written before `userExpiry` existed; the composite index user ASC, expiresAt DESC), phase 1 the
   * range of `userExpiry` between "<user>:<T>" and the end of the user's prefix (its built-in index).
   */
  #liveQuery(phase: number, user: string, expiresAfter: number, limit: number, cursor: string | undefined): Query {
    let query =
      phase === 0
        ? this.#query()
            .filter(new PropertyFilter('user', '=', user))
            .filter(new PropertyFilter('expiresAt', '>', new Date(expiresAfter)))
            .order('expiresAt', { descending: true })
        : this.#query()
            .filter(new PropertyFilter('userExpiry', '>', userExpiryKey(user, expiresAfter)))
            // The prefix ends in ':'; ';' is the next character, so this bounds the user's own range.
            .filter(new PropertyFilter('userExpiry', '<', `${user.length}:${user};`))
            .order('userExpiry', { descending: true });
    query = query.limit(limit);
    if (cursor) query = query.start(cursor);
    return query;
  }

  /** One RunQuery with a property mask; the cursor is absent when the query is exhausted. */
  async #headQuery(
    query: Query,
    properties: string[],
    limit: number,
    gax: object = this.#gax,
  ): Promise<{ found: Found[]; cursor?: string }> {
    const reqOpts = {
      ...(this.#namespace === undefined ? {} : { partitionId: { namespaceId: this.#namespace } }),
      query: dsEntity.queryToQueryProto(query),
      propertyMask: { paths: properties },
    };
    const resp = await this.#call(() => this.#request<RunQueryResponse>('runQuery', reqOpts, gax));
    const batch = resp.batch ?? {};
    const found = dsEntity.formatArray(batch.entityResults ?? []) as Found[];
    const exhausted = found.length < limit || batch.moreResults === 'NO_MORE_RESULTS';
    return exhausted || !batch.endCursor ? { found } : { found, cursor: Buffer.from(batch.endCursor).toString('base64') };
  }

  #name(e: Record<symbol, unknown>): StorageKey {
    return (e[this.#ds.KEY] as Key).name as StorageKey;
  }

  /**
   * One RPC of the generated client through the Datastore client's own request path (its channel,
   * auth, project, database and the request deadline), for calls whose wrappers cost more than
   * they give (get) or cannot express the request (a property mask).
   */
  #request<R>(method: 'lookup' | 'runQuery', reqOpts: object, gaxOpts: object = this.#gax): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#ds.request_({ client: 'DatastoreClient', method, reqOpts, gaxOpts }, (err, r) => (err ? reject(err) : resolve(r as R)));
    });
  }

  #query() {
    return this.#namespace === undefined ? this.#ds.createQuery(this.#kind) : this.#ds.createQuery(this.#namespace, this.#kind);
  }

  /**
   * As deleteMany, under the request deadline instead of the batch engine's: what the device routes
   * and the session cap use. At most 500 keys (RangeError beyond).
   *
   * @example
   * await store.endSessions([target.key]);
   */
  async endSessions(keys: StorageKey[], outbox?: OutboxRecord): Promise<void> {
    if (outbox) return this.#deleteWith(keys, outbox, this.#gax.timeout);
    if (keys.length === 0) return;
    if (keys.length > MAX_COMMIT_MUTATIONS) throw new RangeError(`at most ${MAX_COMMIT_MUTATIONS} keys per commit`);
    await this.#call(() =>
      this.#ds.delete(
        keys.map((k) => this.#key(k)),
        { timeout: this.#gax.timeout },
      ),
    );
  }

  /**
   * Deletes these sessions in one commit under the engine's deadline (one try: the engine retries);
   * absent keys are ignored. At most 500 keys (RangeError beyond).
   *
   * @example
   * await store.deleteMany(page.keys.slice(0, 500));
   */
  async deleteMany(keys: StorageKey[], outbox?: OutboxRecord): Promise<void> {
    if (outbox) return this.#deleteWith(keys, outbox, this.#engineGax.timeout);
    if (keys.length === 0) return;
    if (keys.length > MAX_COMMIT_MUTATIONS) throw new RangeError(`at most ${MAX_COMMIT_MUTATIONS} keys per commit`);
    await this.#call(() =>
      this.#ds.delete(
        keys.map((k) => this.#key(k)),
        this.#engineGax,
      ),
    );
  }

  /** Deletes `keys` and stores `outbox` in one commit (at most 499 keys). */
  async #deleteWith(keys: StorageKey[], outbox: OutboxRecord, timeoutMs: number): Promise<void> {
    if (keys.length + 1 > MAX_COMMIT_MUTATIONS) throw new RangeError(`at most ${MAX_COMMIT_MUTATIONS} mutations per commit`);
    await this.#commitTogether((txn) => {
      txn.delete(keys.map((k) => this.#key(k)));
      txn.save(this.#outboxEntity(outbox));
    }, timeoutMs);
  }

  /**
   * Outbox records written before `before`, oldest first: one query on `createdAt` (its built-in
   * index), reading at most `limit` records.
   *
   * @example
   * const pending = await store.pendingOutbox(Date.now() - 30_000, 100);
   */
  async pendingOutbox(before: number, limit: number): Promise<OutboxRecord[]> {
    const query = (
      this.#namespace === undefined ? this.#ds.createQuery(this.#outboxKind) : this.#ds.createQuery(this.#namespace, this.#outboxKind)
    )
      .filter(new PropertyFilter('createdAt', '<', new Date(before)))
      .order('createdAt')
      .limit(limit);
    const [entities] = await this.#call(() => this.#ds.runQuery(query, { gaxOptions: this.#gax }));
    return (entities as Array<OutboxEntity & Record<symbol, Key>>).map((e) => ({
      id: e[this.#ds.KEY]!.name!,
      createdAt: new Date(e.createdAt).getTime(),
      events: JSON.parse(e.events) as SessionEvent[],
    }));
  }

  /**
   * Deletes these outbox records in one commit; absent ids are ignored.
   *
   * @example
   * await store.deleteOutbox([record.id]);
   */
  async deleteOutbox(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const keys = ids.map((id) => this.#ds.key({ namespace: this.#namespace, path: [this.#outboxKind, id] }));
    await this.#call(() => this.#ds.delete(keys, { timeout: this.#gax.timeout }));
  }

  /** A transaction that was read but not committed is rolled back so its locks go at once. */
  async #release(txn: Transaction): Promise<void> {
    try {
      await txn.rollback({ timeout: this.#gax.timeout });
    } catch {
      // Not started, already finished, or the store is gone: the transaction expires by itself.
    }
  }

  async #call<R>(fn: () => Promise<R>): Promise<R> {
    try {
      await this.#ready();
      return await fn();
    } catch (err) {
      const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
      if (code === GRPC_INVALID_ARGUMENT && ENTITY_TOO_LARGE.test(errorText(err))) {
        throw new DataTooLargeError(0, 0, 'the session is larger than the store accepts');
      }
      if (typeof code === 'number' && !UNAVAILABLE_CODES.has(code)) throw err;
      throw new StoreUnavailableError(undefined, err);
    }
  }
}
