import type { Datastore } from '@google-cloud/datastore';
import type { RawEntity, RawKey, RawValue } from '../../lib/viur/entity';

/**
 * Entities in exactly the shape a ViUR 3.8.35 app stores, written with the Node client's raw
 * Commit so that every value type and index flag is the one the Python client sends:
 *
 * - session.py:122-130 builds the session: `data` (the Session, an Entity without key, run
 *   through db.fix_unindexable_properties), `static_security_key`, `lastseen = time.time()` (a
 *   float: doubleValue), `user = str(user_key)`, and `exclude_from_indexes = {"data"}`. The Python
 *   client's entity_to_protobuf sets excludeFromIndexes on `data` only; nested values keep their
 *   own flags: a dict is an entityValue without key whose properties are indexed, unless
 *   fix_unindexable_properties excluded them (a string with sys.getsizeof >= 1500, or a list
 *   holding one: then every element carries the flag, the list value itself none), db/utils.py:15-54.
 * - After a login `data.user` is the user's dbEntity: an entityValue WITH the user's key
 *   (modules/user.py:1533).
 * - securitykey.py:64-81: kind `viur-securitykey`, key name = the key, `viur_session` (the
 *   cookie, or null), `viur_until` (a datetime: timestampValue), both indexed, custom properties.
 *
 * The test files read the raw entities back (rawEntity) and compare values and flags, not only
 * what the API answers.
 */

export const VIUR_KIND = 'viur-session';
export const KEY_KIND = 'viur-securitykey';

/** A key of `kind` named `name` in `namespace` (the partition the Python client sends, minus the project the client adds). */
export function rawKey(kind: string, name: string, namespace: string): RawKey {
  return { partitionId: { namespaceId: namespace }, path: [{ kind, name }] };
}

/** What the Python client writes for `str`, indexed unless `excluded`. */
export const str = (s: string, excluded = false): RawValue =>
  excluded ? { stringValue: s, excludeFromIndexes: true } : { stringValue: s };
export const int = (n: number | string): RawValue => ({ integerValue: String(n) });
export const dbl = (n: number): RawValue => ({ doubleValue: n });

/** A 42-character cookie value of ViUR's alphabet, unique per call. */
export function cookieValue(): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; i < 42; i++) out += chars[Math.floor(Math.random() * chars.length)];
  return out;
}

/** A 13-character key of ViUR's alphabet. */
export function keyValue(): string {
  return cookieValue().slice(0, 13);
}

/**
 * A string ViUR excludes from indexes: 1,459 ASCII characters is the first length whose
 * `sys.getsizeof` (41 + n on CPython 3.12+) reaches 1,500.
 */
export const LONG_TEXT = 'L'.repeat(1459);
/** One character shorter: still indexed. */
export const SHORT_TEXT = 'S'.repeat(1458);

/**
 * `session[k] = v` for a value of every type a ViUR session may hold, as the Python client stores
 * each (int, float, str, long str, bool, None, list, dict, a dict with a long str, datetime, Key,
 * bytes, GeoPoint, a list holding a long str).
 */
export function everyType(namespace: string): Record<string, RawValue> {
  return {
    count: int(7),
    big: int('9007199254740993'),
    ratio: dbl(0.25),
    whole: dbl(3),
    language: str('de'),
    note: str(LONG_TEXT, true),
    edge: str(SHORT_TEXT),
    flag: { booleanValue: true },
    nothing: { nullValue: 'NULL_VALUE' },
    list: { arrayValue: { values: [int(1), str('two'), { nullValue: 'NULL_VALUE' }] } },
    dict: { entityValue: { properties: { a: int(1), b: { arrayValue: { values: [str('x')] } } } } },
    nested: { entityValue: { properties: { text: str(LONG_TEXT, true), n: int(2) } } },
    longList: { arrayValue: { values: [str('short', true), str(LONG_TEXT, true)] } },
    when: { timestampValue: { seconds: '1767268800', nanos: 123456000 } },
    ref: { keyValue: { partitionId: { namespaceId: namespace }, path: [{ kind: 'order', id: '42' }] } },
    bytes: { blobValue: Buffer.from([0, 1, 2, 255]) },
    where: { geoPointValue: { latitude: 52.5, longitude: 13.4 } },
  };
}

/** The JSON forms everyType() reads as (docs/viur.md#json-forms-of-datastore-values). */
export const EVERY_TYPE_JSON = {
  count: 7,
  big: { $integer: '9007199254740993' },
  ratio: 0.25,
  whole: 3,
  language: 'de',
  note: LONG_TEXT,
  edge: SHORT_TEXT,
  flag: true,
  nothing: null,
  list: [1, 'two', null],
  dict: { a: 1, b: ['x'] },
  nested: { text: LONG_TEXT, n: 2 },
  longList: ['short', LONG_TEXT],
  when: { $timestamp: '2026-01-01T12:00:00.123456Z' },
  ref: { $key: { path: [{ kind: 'order', id: '42' }], namespace: '<ns>' } },
  bytes: { $blob: Buffer.from([0, 1, 2, 255]).toString('base64') },
  where: { $geo: { latitude: 52.5, longitude: 13.4 } },
};

/** A user's dbEntity as authenticateUser puts it in `data.user`: its key and its stored properties, password hash included. */
export function userEntity(namespace: string, id = '5629499534213120'): RawValue {
  return {
    entityValue: {
      key: { partitionId: { namespaceId: namespace }, path: [{ kind: 'user', id }] },
      properties: {
        name: str('alice@example.com'),
        password: { entityValue: { properties: { pwhash: { blobValue: Buffer.from('secret-hash') }, salt: str('NaCl') } } },
        access: { arrayValue: { values: [str('root'), str('admin')] } },
        status: int(10),
      },
    },
  };
}

/** ViUR's legacy urlsafe string of a user key, as a fixture value (what `str(user_key)` gives; never computed here). */
export const USER_STRING = 'ahFzfnNlc3Npb24tdGVzdHIRCxIEdXNlchiAgICAgICACgw';

/** A stored session as session.py:122-130 writes it. `legacyStaticKey` writes the older `staticSecurityKey` name. */
export function sessionEntity(o: {
  namespace: string;
  cookie: string;
  data?: Record<string, RawValue>;
  lastseen: number;
  staticKey: string;
  user?: string;
  legacyStaticKey?: boolean;
}): RawEntity {
  return {
    key: rawKey(VIUR_KIND, o.cookie, o.namespace),
    properties: {
      data: { entityValue: { properties: o.data ?? {} }, excludeFromIndexes: true },
      [o.legacyStaticKey ? 'staticSecurityKey' : 'static_security_key']: str(o.staticKey),
      lastseen: dbl(o.lastseen),
      user: str(o.user ?? '__guest__'),
    },
  };
}

/** A one-time key as securitykey.create writes it: bound to `session` (a cookie) or unbound (null). */
export function keyEntity(o: {
  namespace: string;
  key: string;
  session: string | null;
  untilMs: number;
  custom?: Record<string, RawValue>;
}): RawEntity {
  return {
    key: rawKey(KEY_KIND, o.key, o.namespace),
    properties: {
      ...o.custom,
      viur_session: o.session === null ? { nullValue: 'NULL_VALUE' } : str(o.session),
      viur_until: { timestampValue: { seconds: String(Math.floor(o.untilMs / 1000)), nanos: (o.untilMs % 1000) * 1e6 } },
    },
  };
}

function rpc<R>(ds: Datastore, method: string, reqOpts: object): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    ds.request_({ client: 'DatastoreClient', method, reqOpts }, (err: unknown, r: unknown) => (err ? reject(err) : resolve(r as R)));
  });
}

/** Writes the entities as they are (one non-transactional commit of upserts). */
export async function writeRaw(ds: Datastore, entities: RawEntity[]): Promise<void> {
  await rpc(ds, 'commit', { mode: 'NON_TRANSACTIONAL', mutations: entities.map((e) => ({ upsert: e })) });
}

/**
 * The entity as Datastore holds it, through a raw Lookup: every value with its type field and
 * its `excludeFromIndexes` flag as the emulator stores them (what a test compares).
 */
export async function rawEntity(ds: Datastore, key: RawKey): Promise<RawEntity | null> {
  const r = await rpc<{ found?: Array<{ entity: RawEntity }> }>(ds, 'lookup', { keys: [key] });
  return r.found?.[0]?.entity ?? null;
}

/**
 * A stored value reduced to what the Datastore API distinguishes: its type, value and index flag
 * (recursively), so that two reads of the same value compare equal and a changed flag does not.
 */
export function shape(value: RawValue | undefined): unknown {
  if (value === undefined) return undefined;
  const type = value.valueType!;
  const flag = value.excludeFromIndexes === true;
  switch (type) {
    case 'entityValue': {
      const e = value.entityValue!;
      return { type, flag, key: e.key ? e.key.path : null, properties: shapeAll(e.properties) };
    }
    case 'arrayValue':
      return { type, flag, values: (value.arrayValue?.values ?? []).map(shape) };
    case 'blobValue':
      return { type, flag, value: Buffer.from(value.blobValue as Uint8Array).toString('base64') };
    case 'keyValue':
      return { type, flag, value: value.keyValue!.path };
    default:
      return { type, flag, value: value[type as keyof RawValue] };
  }
}

/** shape() of every property. */
export function shapeAll(properties: Record<string, RawValue>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, shape(v)]));
}
