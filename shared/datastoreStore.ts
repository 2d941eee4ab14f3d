import { type Datastore, type Key, PropertyFilter, type Transaction } from '@google-cloud/datastore';
// The client's own proto conversions (not re-exported from its main module).
import { entity } from '@google-cloud/datastore/build/src/entity';
import { StoreUnavailableError } from './errors';
import { KeyedLock } from './keyedLock';
import { emptyData, type JsonValue, type SessionData } from './json';
import { GUEST_USER } from './session';
import type { Decision, HeadPage, KeyPage, SessionHead, SessionSelector, SessionStore, StorageKey, StoredSession } from './store';

export interface DatastoreStoreOptions {
  datastore: Datastore;
  kind: string;
  namespace?: string;
  /** Deadline of every Datastore call; past it the call is cancelled and StoreUnavailableError thrown. */
  timeoutMs: number;
  /** How often a contended transaction is tried in all. */
  maxAttempts?: number;
  /**
   * Open transactions with a separate beginTransaction call instead of letting the first lookup
   * open them. The Firestore emulator in Datastore mode mishandles lookups that open a
   * transaction (the commit then fails with "Transaction lock timeout"), so this is on whenever
   * DATASTORE_EMULATOR_HOST is set; production keeps the cheaper path.
   */
  separateBegin?: boolean;
}

/** The part of a RunQuery answer that is read here. */
interface RunQueryResponse {
  batch?: { entityResults?: Parameters<typeof entity.formatArray>[0]; moreResults?: string; endCursor?: Uint8Array | string | null };
}

/** Shape of the entity as Datastore holds it (names kept from ViUR where it had them). */
interface SessionEntity {
  data: Record<string, string>;
  user: string;
  lastseen: number;
  createdAt: Date;
  expiresAt: Date;
  staticSecurityKey: string;
  securityKeys: string[];
  /** Absent on sessions written before it existed. */
  userAgent?: string | null;
}

/**
 * Everything but `user`, `createdAt` and `expiresAt` is excluded from indexes; `data` at every
 * depth (its values are JSON text, so one level is all there is), which is what lets a value
 * be larger than the 1,500 bytes an indexed string may have.
 */
const EXCLUDE_FROM_INDEXES = ['data', 'data.*', 'lastseen', 'staticSecurityKey', 'securityKeys[]', 'userAgent'];

/**
 * The properties a listing of a user's sessions fetches (a property mask on the query: neither an
 * index nor a projection is needed, and `data` never leaves the database). Must cover SessionHead.
 */
const HEAD_PROPERTIES = ['user', 'lastseen', 'createdAt', 'expiresAt', 'userAgent'];

const GRPC_ABORTED = 10;
/** gRPC codes that mean the store is down, slow or overloaded, not that the request was wrong. */
const UNAVAILABLE_CODES = new Set([1, 2, 4, 8, 13, 14]);

/**
 * The client's excludeFromIndexes paths treat `.` and `[]` as separators, so a data key containing
 * them would escape the exclusion; such characters (and `%`, to stay reversible) are percent-encoded
 * in property names.
 */
function propertyName(key: string): string {
  return key.replace(/[%.[\]]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

function dataKey(name: string): string {
  return name.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

function toEntity(s: StoredSession): SessionEntity {
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.data)) data[propertyName(k)] = JSON.stringify(v);
  return {
    data,
    user: s.user ?? GUEST_USER,
    lastseen: s.lastSeen / 1000,
    createdAt: new Date(s.createdAt),
    expiresAt: new Date(s.expiresAt),
    staticSecurityKey: s.staticKeyDigest,
    securityKeys: s.securityKeyDigests,
    userAgent: s.userAgent,
  };
}

function fromEntity(e: SessionEntity): StoredSession {
  const data: SessionData = emptyData();
  for (const [name, text] of Object.entries(e.data ?? {})) data[dataKey(name)] = JSON.parse(text) as JsonValue;
  return {
    data,
    user: e.user === GUEST_USER ? null : e.user,
    lastSeen: Math.round(Number(e.lastseen) * 1000),
    createdAt: new Date(e.createdAt).getTime(),
    expiresAt: new Date(e.expiresAt).getTime(),
    staticKeyDigest: e.staticSecurityKey,
    securityKeyDigests: e.securityKeys ?? [],
    userAgent: typeof e.userAgent === 'string' ? e.userAgent : null,
  };
}

function headOf(e: Partial<SessionEntity>): SessionHead {
  return {
    user: e.user === GUEST_USER || e.user === undefined ? null : e.user,
    lastSeen: Math.round(Number(e.lastseen) * 1000),
    createdAt: new Date(e.createdAt ?? 0).getTime(),
    expiresAt: new Date(e.expiresAt ?? 0).getTime(),
    userAgent: typeof e.userAgent === 'string' ? e.userAgent : null,
  };
}

function isAborted(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === GRPC_ABORTED;
}

/** Sessions in Cloud Datastore / Firestore in Datastore mode, kind `viur-session` by default. */
export class DatastoreSessionStore implements SessionStore {
  readonly #ds: Datastore;
  readonly #kind: string;
  readonly #namespace: string | undefined;
  readonly #gax: { timeout: number };
  readonly #maxAttempts: number;
  readonly #separateBegin: boolean;
  readonly #lock = new KeyedLock();

  constructor(options: DatastoreStoreOptions) {
    this.#ds = options.datastore;
    this.#kind = options.kind;
    this.#namespace = options.namespace;
    this.#gax = { timeout: options.timeoutMs };
    this.#maxAttempts = options.maxAttempts ?? 8;
    this.#separateBegin = options.separateBegin ?? false;
  }

  #key(name: StorageKey): Key {
    return this.#ds.key({ namespace: this.#namespace, path: [this.#kind, name] });
  }

  async get(key: StorageKey): Promise<StoredSession | null> {
    const [entity] = await this.#call(() => this.#ds.get(this.#key(key), { gaxOptions: this.#gax }));
    return entity ? fromEntity(entity as SessionEntity) : null;
  }

  async update<T>(key: StorageKey | null, decide: (current: StoredSession | null) => Decision<T>): Promise<T> {
    if (key === null) {
      // Nothing to read for a brand-new session: one non-transactional commit, insert-only so
      // that it can never overwrite an existing entity.
      const { writes, result } = decide(null);
      if (writes && writes.put.length > 0) {
        const entities = writes.put.map((p) => ({
          key: this.#key(p.key),
          data: toEntity(p.session),
          excludeFromIndexes: EXCLUDE_FROM_INDEXES,
          method: 'insert' as const,
        }));
        await this.#call(() => this.#ds.save(entities, { timeout: this.#gax.timeout }));
      }
      return result;
    }
    return this.#lock.run(key, () => this.#transact(key, decide));
  }

  async #transact<T>(key: StorageKey, decide: (current: StoredSession | null) => Decision<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      // Without run(), the client opens the transaction with the first lookup: one round trip.
      const txn = this.#ds.transaction();
      try {
        if (this.#separateBegin) await this.#call(() => txn.run({ gaxOptions: this.#gax }));
        const [entity] = await this.#call(() => txn.get(this.#key(key), { gaxOptions: this.#gax }));
        const { writes, result } = decide(entity ? fromEntity(entity as SessionEntity) : null);
        if (!writes || (writes.put.length === 0 && writes.delete.length === 0)) {
          await this.#release(txn);
          return result;
        }
        for (const p of writes.put) {
          txn.save({ key: this.#key(p.key), data: toEntity(p.session), excludeFromIndexes: EXCLUDE_FROM_INDEXES });
        }
        if (writes.delete.length > 0) txn.delete(writes.delete.map((k) => this.#key(k)));
        await this.#call(() => txn.commit({ timeout: this.#gax.timeout }));
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

  async findKeys(selector: SessionSelector, limit: number, cursor?: string): Promise<KeyPage> {
    let query = (this.#namespace === undefined ? this.#ds.createQuery(this.#kind) : this.#ds.createQuery(this.#namespace, this.#kind)).select('__key__').limit(limit);
    if (selector.kind === 'expired') {
      query = query.filter(new PropertyFilter('expiresAt', '<', new Date(selector.before))).order('expiresAt');
    } else {
      // With a user: needs the composite index (user ASC, createdAt ASC) declared in terraform/datastore.tf.
      if (selector.user !== null) query = query.filter(new PropertyFilter('user', '=', selector.user));
      query = query.filter(new PropertyFilter('createdAt', '<=', new Date(selector.createdAtOrBefore))).order('createdAt');
    }
    if (cursor) query = query.start(cursor);
    const [entities, info] = await this.#call(() => this.#ds.runQuery(query, { gaxOptions: this.#gax }));
    const keys = entities.map((e) => (e[this.#ds.KEY] as Key).name as string);
    const exhausted = keys.length < limit || info.moreResults === 'NO_MORE_RESULTS';
    return exhausted ? { keys } : { keys, cursor: info.endCursor };
  }

  /**
   * The client's runQuery has no property mask, so this sends the RunQuery request through the
   * client's own request path (same channel, auth, database and deadline) with one, and decodes
   * the answer with the client's own entity helpers. Equality on `user` only: the built-in index.
   */
  async listUserSessions(user: string, limit: number, cursor?: string): Promise<HeadPage> {
    let query = this.#query().filter(new PropertyFilter('user', '=', user)).limit(limit);
    if (cursor) query = query.start(cursor);
    const reqOpts = {
      ...(this.#namespace === undefined ? {} : { partitionId: { namespaceId: this.#namespace } }),
      query: entity.queryToQueryProto(query),
      propertyMask: { paths: HEAD_PROPERTIES },
    };
    const resp = await this.#call(
      () =>
        new Promise<RunQueryResponse>((resolve, reject) => {
          this.#ds.request_({ client: 'DatastoreClient', method: 'runQuery', reqOpts, gaxOpts: this.#gax }, (err, r) => (err ? reject(err) : resolve(r as RunQueryResponse)));
        }),
    );
    const batch = resp.batch ?? {};
    const found = entity.formatArray(batch.entityResults ?? []) as Array<Partial<SessionEntity> & Record<symbol, unknown>>;
    const sessions = found.map((e) => ({ key: (e[this.#ds.KEY] as Key).name as string, head: headOf(e) }));
    const exhausted = sessions.length < limit || batch.moreResults === 'NO_MORE_RESULTS';
    return exhausted || !batch.endCursor ? { sessions } : { sessions, cursor: Buffer.from(batch.endCursor).toString('base64') };
  }

  #query() {
    return this.#namespace === undefined ? this.#ds.createQuery(this.#kind) : this.#ds.createQuery(this.#namespace, this.#kind);
  }

  async deleteMany(keys: StorageKey[]): Promise<void> {
    if (keys.length === 0) return;
    if (keys.length > 500) throw new RangeError('at most 500 keys per commit');
    await this.#call(() => this.#ds.delete(keys.map((k) => this.#key(k)), { timeout: this.#gax.timeout }));
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
      return await fn();
    } catch (err) {
      const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
      if (typeof code === 'number' && !UNAVAILABLE_CODES.has(code)) throw err;
      throw new StoreUnavailableError(undefined, err);
    }
  }
}
