import { InvalidValueError } from '../core/errors';
import { assertJsonValue, type JsonValue } from '../core/json';

/**
 * The codec between a ViUR session's `data` (Datastore values, as the Python client writes them)
 * and JSON. Pure: it works on the Datastore API's own value objects (the generated client's
 * `google.datastore.v1.Value`), so a value this module did not make is carried back byte for byte.
 * docs/viur.md#json-forms-of-datastore-values describes the forms and cites ViUR's lines.
 */

/** A Datastore key as the API carries it. */
export interface RawKey {
  partitionId?: { projectId?: string; databaseId?: string; namespaceId?: string } | null;
  path: Array<{ kind: string; id?: string | number | null; name?: string | null; idType?: string }>;
}

/** A Datastore entity as the API carries it: a key (absent on an embedded entity) and properties. */
export interface RawEntity {
  key?: RawKey | null;
  properties: Record<string, RawValue>;
}

/** One Datastore value as the API carries it: one of the typed fields, its index flag and meaning. */
export interface RawValue {
  nullValue?: 'NULL_VALUE' | 0 | null;
  booleanValue?: boolean;
  integerValue?: string | number;
  doubleValue?: number;
  timestampValue?: { seconds: string | number; nanos?: number } | null;
  keyValue?: RawKey | null;
  stringValue?: string;
  blobValue?: Uint8Array | string | null;
  geoPointValue?: { latitude: number; longitude: number } | null;
  entityValue?: RawEntity | null;
  arrayValue?: { values?: RawValue[] | null } | null;
  meaning?: number;
  excludeFromIndexes?: boolean;
  /** Set by the client on what it reads: which of the typed fields is the value. */
  valueType?: string;
}

/** The typed fields of RawValue, in the order the oneof lists them. */
const VALUE_FIELDS = [
  'nullValue',
  'booleanValue',
  'integerValue',
  'doubleValue',
  'timestampValue',
  'keyValue',
  'stringValue',
  'blobValue',
  'geoPointValue',
  'entityValue',
  'arrayValue',
] as const;

type ValueField = (typeof VALUE_FIELDS)[number];

/**
 * Which typed field a value holds: the client's `valueType` on what it read, else the first field
 * that is set (values this module builds set exactly one).
 *
 * @example
 * valueKind({ stringValue: 'de' }); // 'stringValue'
 */
export function valueKind(value: RawValue): ValueField {
  if (value.valueType && (VALUE_FIELDS as readonly string[]).includes(value.valueType)) return value.valueType as ValueField;
  for (const f of VALUE_FIELDS) if (value[f] !== undefined && value[f] !== null) return f;
  return 'nullValue';
}

/**
 * `sys.getsizeof(s)` of a Python 3.12+ str (viur-core 3.8 needs Python 3.12; PEP 623 removed the
 * wide-character cache there): the compact-ASCII header is 41 bytes with the terminator, a compact
 * non-ASCII string 56 plus one terminator of its width, and each character takes 1, 2 or 4 bytes
 * after the widest character in the string.
 *
 * @example
 * pythonStrSize('a'.repeat(1459)); // 1500
 */
export function pythonStrSize(s: string): number {
  let max = 0;
  let n = 0;
  for (const ch of s) {
    n += 1;
    const cp = ch.codePointAt(0)!;
    if (cp > max) max = cp;
  }
  if (max < 128) return 41 + n;
  const width = max < 256 ? 1 : max < 65536 ? 2 : 4;
  return 56 + width * (n + 1);
}

/** Datastore refuses an indexed string longer than this many UTF-8 bytes, even inside an unindexed entity. */
export const MAX_INDEXED_STRING_BYTES = 1500;

/**
 * Whether ViUR's `fix_unindexable_properties` finds a string too long to index
 * (`sys.getsizeof(s) >= 1500`, src/viur/core/db/utils.py:34), or it is longer than Datastore
 * indexes at all (a put of it indexed would fail, in ViUR too: we exclude it instead).
 *
 * @example
 * isUnindexableString('x'.repeat(2000)); // true
 */
export function isUnindexableString(s: string): boolean {
  return pythonStrSize(s) >= 1500 || Buffer.byteLength(s, 'utf8') > MAX_INDEXED_STRING_BYTES;
}

/** ViUR's has_unindexable_property on a JSON value (utils.py:28-36). */
function hasUnindexable(value: JsonValue): boolean {
  if (typeof value === 'string') return isUnindexableString(value);
  if (Array.isArray(value)) return value.some(hasUnindexable);
  if (value !== null && typeof value === 'object') return Object.values(value).some(hasUnindexable);
  return false;
}

/**
 * The Datastore value the Python client writes for a Python value made from JSON: an integral
 * JSON number within ±2^53 is an int (integerValue), any other number a float (doubleValue);
 * strings, booleans and null as they are; an array a list (arrayValue); an object a dict, which
 * the client writes as an entity without key (entityValue). `excluded` is the property's index
 * flag; array elements carry it (the client sets it on each element of an excluded list).
 */
function plainValue(value: JsonValue, excluded: boolean): RawValue {
  const flag = excluded ? { excludeFromIndexes: true } : {};
  if (value === null) return { nullValue: 'NULL_VALUE', ...flag };
  if (typeof value === 'boolean') return { booleanValue: value, ...flag };
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) ? { integerValue: String(value), ...flag } : { doubleValue: value, ...flag };
  }
  if (typeof value === 'string') return { stringValue: value, ...flag };
  if (Array.isArray(value)) {
    const values = value.map((v) => {
      if (Array.isArray(v)) throw new InvalidValueError('Datastore cannot store an array directly inside an array');
      return plainValue(v, excluded);
    });
    // The Python client flags each element of an excluded list, never the list value itself.
    return { arrayValue: { values } };
  }
  // A dict inside a list is not walked by fix_unindexable_properties: its long strings would be
  // indexed and the put refused, so here they are excluded the way a dict property is.
  return { entityValue: embeddedEntity(value), ...flag };
}

/**
 * An embedded entity without key from a JSON object, with ViUR's index flags on its properties:
 * a property holding an unindexable string anywhere is excluded (a string, or a list whose
 * elements are all excluded), except an object, which becomes an entity whose own properties get
 * the same treatment (utils.py:39-49). Everything else stays indexed.
 */
function embeddedEntity(obj: { [key: string]: JsonValue }): RawEntity {
  const properties: Record<string, RawValue> = {};
  for (const [k, v] of Object.entries(obj)) properties[k] = propertyValue(v);
  return { properties };
}

/**
 * The Datastore value one top-level data key gets when ViUR's `session[key] = value` is saved
 * with this JSON value (session.py:124, db/utils.py:15-54). Throws InvalidValueError for what is
 * no JSON or cannot be stored (an array directly inside an array).
 *
 * @example
 * propertyValue(3); // { integerValue: '3' }
 * propertyValue('x'.repeat(2000)); // { stringValue: 'xx…', excludeFromIndexes: true }
 */
export function propertyValue(value: JsonValue): RawValue {
  assertJsonValue(value);
  if (!hasUnindexable(value)) return plainValue(value, false);
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return { entityValue: embeddedEntity(value) };
  return plainValue(value, true);
}

/** Digits of a timestamp's fraction, trimmed to milliseconds or microseconds or nanoseconds. */
function isoTimestamp(ts: { seconds: string | number; nanos?: number }): string {
  const seconds = Number(ts.seconds);
  const nanos = ts.nanos ?? 0;
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  if (nanos === 0) return `${base}Z`;
  const digits = String(nanos).padStart(9, '0').replace(/0+$/, '');
  const width = digits.length <= 3 ? 3 : digits.length <= 6 ? 6 : 9;
  return `${base}.${digits.padEnd(width, '0')}Z`;
}

/**
 * A key as its JSON form names it: the path as `[{kind, id}]` or `[{kind, name}]` (ids as
 * strings: they are 64-bit), and the namespace when it has one.
 *
 * @example
 * keyJson({ path: [{ kind: 'user', id: '123' }] }); // { path: [{ kind: 'user', id: '123' }] }
 */
export function keyJson(key: RawKey): { path: Array<{ kind: string; id?: string; name?: string }>; namespace?: string } {
  const path = key.path.map((e) =>
    e.name !== undefined && e.name !== null && e.name !== '' ? { kind: e.kind, name: e.name } : { kind: e.kind, id: String(e.id ?? '') },
  );
  const namespace = key.partitionId?.namespaceId;
  return namespace ? { path, namespace } : { path };
}

function blobBase64(blob: Uint8Array | string | null | undefined): string {
  if (blob === null || blob === undefined) return '';
  return typeof blob === 'string' ? blob : Buffer.from(blob).toString('base64');
}

/**
 * The JSON form of a stored value (docs/viur.md#json-forms-of-datastore-values): JSON's own types
 * as they are; an integer outside ±2^53 `{"$integer": "…"}`; a double that is not finite
 * `{"$double": "NaN"}`; a timestamp `{"$timestamp": "<ISO 8601, UTC>"}`; a key `{"$key": {path}}`;
 * a blob `{"$blob": "<base64>"}`; a geo point `{"$geo": {latitude, longitude}}`; an entity with a
 * key `{"$key": …, "$properties": {…}}`. Such forms are for reading: a value is only replaced
 * when its own key is written.
 *
 * @example
 * toJson({ timestampValue: { seconds: '1767268800', nanos: 0 } }); // { $timestamp: '2026-01-01T12:00:00Z' }
 */
export function toJson(value: RawValue): JsonValue {
  switch (valueKind(value)) {
    case 'nullValue':
      return null;
    case 'booleanValue':
      return value.booleanValue ?? false;
    case 'integerValue': {
      const n = Number(value.integerValue);
      return Number.isSafeInteger(n) ? n : { $integer: String(value.integerValue) };
    }
    case 'doubleValue': {
      const d = value.doubleValue ?? 0;
      if (Number.isFinite(d)) return d;
      return { $double: String(d) };
    }
    case 'timestampValue':
      return { $timestamp: isoTimestamp(value.timestampValue ?? { seconds: 0 }) };
    case 'keyValue':
      return { $key: keyJson(value.keyValue ?? { path: [] }) };
    case 'stringValue':
      return value.stringValue ?? '';
    case 'blobValue':
      return { $blob: blobBase64(value.blobValue) };
    case 'geoPointValue':
      return { $geo: { latitude: value.geoPointValue?.latitude ?? 0, longitude: value.geoPointValue?.longitude ?? 0 } };
    case 'arrayValue':
      return (value.arrayValue?.values ?? []).map(toJson);
    case 'entityValue': {
      const entity = value.entityValue ?? { properties: {} };
      const props = entityJson(entity.properties);
      return entity.key ? { $key: keyJson(entity.key), $properties: props } : props;
    }
  }
}

/**
 * The JSON form of an entity's properties, each value by toJson().
 *
 * @example
 * entityJson({ language: { stringValue: 'de' } }); // { language: 'de' }
 */
export function entityJson(properties: Record<string, RawValue> | null | undefined): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = Object.create(null) as Record<string, JsonValue>;
  for (const [k, v] of Object.entries(properties ?? {})) out[k] = toJson(v);
  return { ...out };
}
