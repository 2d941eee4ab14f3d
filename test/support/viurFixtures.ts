import { randomInt } from 'node:crypto';
import type { Datastore, Key } from '@google-cloud/datastore';
import { entity as dsEntity } from '@google-cloud/datastore/build/src/entity';
import { GUEST_USER } from '../../lib/core/limits';
import { VIUR_COOKIE_LENGTH, VIUR_KEY_LENGTH, VIUR_SECURITY_KEY_KIND } from '../../lib/viur/constants';

/**
 * Sessions and one-time keys in exactly the shape a ViUR 3.8.35 app stores them, written with the
 * Node client (the kill and cleanup fixtures; docs/viur-kill-cleanup.md#fixtures says how they were
 * checked against viur-core's code and the emulator's raw index flags):
 *
 * - `viur-session`, key name = the cookie (42 of [A-Za-z0-9], no parent): `data` an embedded entity
 *   excluded from indexes as a whole (session.py `exclude_from_indexes = {"data"}`), its own values
 *   indexed unless a string is long (db/utils.py fix_unindexable_properties: `sys.getsizeof >= 1500`,
 *   i.e. 1,451+ ASCII characters); `lastseen` a double (`time.time()`), `static_security_key` a
 *   13-character string, `user` `__guest__` or the user key's legacy urlsafe string — all indexed.
 * - after a login `data.user` is an embedded entity with the user's key, a copy of the user's properties.
 * - `viur-securitykey`, key name = the key: `viur_session` (cookie or null), `viur_until` (timestamp),
 *   custom properties; all indexed (securitykey.py create with indexed=True).
 */

/** An entity to write: its key, its properties and the paths excluded from indexes (the client's save() shape). */
export interface FixtureEntity {
  key: Key;
  data: Record<string, unknown>;
  excludeFromIndexes?: string[];
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `utils.string.random(n)`: n letters and digits. */
export function viurRandom(length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

/** A fresh cookie value / session key name. */
export const viurCookie = (): string => viurRandom(VIUR_COOKIE_LENGTH);

export interface ViurSessionFixture {
  /** The cookie value (key name). Default: random. */
  cookie?: string;
  /** `__guest__` (default) or the user key's string. */
  user?: string;
  /** Unix seconds; default now. */
  lastseen?: number;
  /** Data of the session; default a few nested values of every common type. */
  data?: Record<string, unknown>;
  /** When set, `data.user` is an embedded entity with this key path (a logged-in session). */
  userEntity?: { path: Array<string | number>; properties: Record<string, unknown> };
  staticSecurityKey?: string;
}

/** The stored session entity (key and data) a ViUR app writes, for `ds.save`/`ds.upsert`. */
export function viurSessionEntity(
  ds: Datastore,
  namespace: string | undefined,
  f: ViurSessionFixture = {},
): FixtureEntity & { cookie: string; userKey?: Key } {
  const cookie = f.cookie ?? viurCookie();
  const data: Record<string, unknown> = f.data ?? {
    language: 'de',
    count: 3,
    ratio: ds.double(0.5),
    flag: true,
    nothing: null,
    list: ['a', 1, ds.double(2)],
    nested: { deep: { x: 'y' } },
    when: new Date('2026-01-01T12:00:00Z'),
    long: 'x'.repeat(1500),
  };
  const excluded: string[] = ['data'];
  if ('long' in data) excluded.push('data.long');
  const userKey = f.userEntity ? ds.key({ namespace, path: f.userEntity.path }) : undefined;
  if (f.userEntity) data.user = { ...f.userEntity.properties };
  return {
    cookie,
    ...(userKey ? { userKey } : {}),
    key: ds.key({ namespace, path: ['viur-session', cookie] }),
    excludeFromIndexes: excluded,
    data: {
      data,
      static_security_key: f.staticSecurityKey ?? viurRandom(VIUR_KEY_LENGTH),
      lastseen: ds.double(f.lastseen ?? Date.now() / 1000),
      user: f.user ?? GUEST_USER,
    },
  };
}

export interface ViurSecurityKeyFixture {
  key?: string;
  /** The cookie of the session it is bound to; null: unbound. */
  session: string | null;
  /** ms since the epoch. */
  until: number;
  custom?: Record<string, unknown>;
}

/** The stored one-time key entity a ViUR app writes (securitykey.create). */
export function viurSecurityKeyEntity(
  ds: Datastore,
  namespace: string | undefined,
  f: ViurSecurityKeyFixture,
): FixtureEntity & { name: string } {
  const name = f.key ?? viurRandom(VIUR_KEY_LENGTH);
  return {
    name,
    key: ds.key({ namespace, path: [VIUR_SECURITY_KEY_KIND, name] }),
    data: { ...f.custom, viur_session: f.session, viur_until: new Date(f.until) },
  };
}

/**
 * The entity as the client encodes it, with the key of the embedded user entity set (ViUR stores
 * `data.user` with its key; the client's save() has no way to give an embedded entity a key).
 */
function entityProto(e: FixtureEntity & { userKey?: Key }): object {
  const proto = dsEntity.entityToEntityProto({ data: e.data, excludeFromIndexes: e.excludeFromIndexes }) as {
    key: unknown;
    properties: Record<string, { entityValue?: { key?: unknown; properties: Record<string, { entityValue?: { key?: unknown } }> } }>;
  };
  proto.key = dsEntity.keyToKeyProto(e.key);
  const user = proto.properties.data?.entityValue?.properties.user?.entityValue;
  if (e.userKey && user) user.key = dsEntity.keyToKeyProto(e.userKey);
  return proto;
}

/**
 * Writes entities with plain upserts (ViUR's db.put), in commits of at most 500, through the
 * client's own request path.
 */
export async function putAll(ds: Datastore, entities: FixtureEntity[]): Promise<void> {
  for (let i = 0; i < entities.length; i += 500) {
    const mutations = entities.slice(i, i + 500).map((e) => ({ upsert: entityProto(e) }));
    await new Promise<void>((resolve, reject) =>
      ds.request_({ client: 'DatastoreClient', method: 'commit', reqOpts: { mode: 'NON_TRANSACTIONAL', mutations }, gaxOpts: {} }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
}

/** The key names of a kind that exist in `namespace`. */
export async function namesOf(ds: Datastore, namespace: string | undefined, kind: string): Promise<string[]> {
  const query = (namespace === undefined ? ds.createQuery(kind) : ds.createQuery(namespace, kind)).select('__key__');
  const [rows] = await ds.runQuery(query);
  return (rows as Array<Record<symbol, { name: string }>>).map((r) => r[ds.KEY].name).sort();
}
