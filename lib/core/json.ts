import { InvalidKeyError, InvalidValueError } from './errors';
import { MAX_DEPTH, MAX_KEY_BYTES } from './limits';

/** A JSON scalar: what a session value is made of at the leaves. */
export type JsonPrimitive = string | number | boolean | null;
/** Any value JSON.stringify/JSON.parse return unchanged: what a session key may hold. */
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
/** The data of a session: its keys and their JSON values. */
export type SessionData = Record<string, JsonValue>;

/**
 * Data keys become Datastore property names of the embedded `data` entity: names of the form
 * `__x__` are reserved there (and `__proto__` is one of them), so they are refused up front.
 * Also refused: non-strings, the empty string, more than MAX_KEY_BYTES bytes, lone surrogates.
 * Throws InvalidKeyError; Session.set() and the `{key}` route parameter call it.
 *
 * @example
 * assertValidKey('language'); // passes
 * assertValidKey('__proto__'); // throws InvalidKeyError: keys of the form __name__ are reserved
 */
export function assertValidKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidKeyError('a key must be a non-empty string');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new InvalidKeyError(`a key may have at most ${MAX_KEY_BYTES} bytes`);
  }
  if (/^__.*__$/s.test(key)) throw new InvalidKeyError('keys of the form __name__ are reserved');
  if (!key.isWellFormed()) throw new InvalidKeyError('a key must be well-formed unicode');
}

/**
 * Accepts exactly the values that JSON.stringify/JSON.parse return unchanged: plain objects,
 * arrays, strings, finite numbers, booleans and null. Anything else (undefined, NaN, Date,
 * Map, class instances, functions, cycles) is refused instead of being silently altered.
 * Throws InvalidValueError naming the offending place by `path`; nesting beyond MAX_DEPTH is refused
 * too. `depth` and `seen` are for the recursion only.
 *
 * @example
 * assertJsonValue({ cart: [{ sku: 'A1', qty: 2 }] }); // passes
 * assertJsonValue({ n: NaN }); // throws InvalidValueError: value.n is not a finite number
 */
export function assertJsonValue(value: unknown, path = 'value', depth = 0, seen = new Set<object>()): asserts value is JsonValue {
  if (depth > MAX_DEPTH) throw new InvalidValueError(`${path} is nested deeper than ${MAX_DEPTH} levels`);
  if (value === null) return;
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) throw new InvalidValueError(`${path} has a lone surrogate`);
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new InvalidValueError(`${path} is not a finite number`);
      return;
    case 'object':
      break;
    default:
      throw new InvalidValueError(`${path} is a ${typeof value}, not a JSON value`);
  }
  const obj = value;
  if (seen.has(obj)) throw new InvalidValueError(`${path} is circular`);
  seen.add(obj);
  if (Array.isArray(obj)) {
    obj.forEach((item, i) => assertJsonValue(item, `${path}[${i}]`, depth + 1, seen));
  } else {
    const proto: unknown = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      throw new InvalidValueError(`${path} is not a plain object`);
    }
    for (const [k, v] of Object.entries(obj)) assertJsonValue(v, `${path}.${k}`, depth + 1, seen);
  }
  seen.delete(obj);
}

/**
 * The data as stored: one JSON text of the whole map. Its UTF-8 length is the measure of the data
 * size limit, exactly what the Datastore property holds (one stringify: the cost follows the bytes,
 * not the number of keys).
 *
 * @example
 * dataText({ language: 'de' }); // '{"language":"de"}'
 */
export function dataText(data: SessionData): string {
  return JSON.stringify(data);
}

/**
 * The size the data limit (SESSION_MAX_DATA_BYTES) is checked against: the UTF-8 bytes of dataText.
 *
 * @example
 * dataSize({ language: 'de' }); // 17
 */
export function dataSize(data: SessionData): number {
  return Buffer.byteLength(dataText(data), 'utf8');
}

/**
 * How many JSON values the data holds: every object, array, string, number, boolean and null at any
 * depth, each key's value included (what MAX_DATA_NODES bounds). Counting stops once it passes
 * `stopAfter`, so the walk costs no more than the bound, whatever the data; it is iterative, so
 * data stored deeper than MAX_DEPTH (before that limit) cannot overflow the stack.
 *
 * @example
 * dataNodes({ cart: [{ sku: 'A1', qty: 2 }], language: 'de' }); // 5
 */
export function dataNodes(data: SessionData, stopAfter = Infinity): number {
  let count = 0;
  // The map itself is not counted, its values are.
  const open: object[] = [data];
  while (open.length > 0) {
    const o = open.pop()!;
    for (const v of Array.isArray(o) ? (o as JsonValue[]) : Object.values(o as Record<string, JsonValue>)) {
      if (++count > stopAfter) return count;
      if (typeof v === 'object' && v !== null) open.push(v);
    }
  }
  return count;
}

/**
 * The inverse of dataText, into a prototype-less map.
 *
 * @example
 * parseDataText('{"language":"de"}').language; // 'de'
 */
export function parseDataText(text: string): SessionData {
  return Object.assign(emptyData(), JSON.parse(text) as SessionData);
}

/**
 * A data object without a prototype, so no key can reach Object.prototype.
 *
 * @example
 * const data = emptyData();
 * data.language = 'de';
 */
export function emptyData(): SessionData {
  return Object.create(null) as SessionData;
}

/**
 * A shallow copy of `data` that keeps the null prototype (values are shared, not cloned): what a
 * replay of operations starts from, so the stored original stays untouched.
 *
 * @example
 * const next = copyData(stored.data);
 * delete next.cart;
 */
export function copyData(data: SessionData): SessionData {
  return Object.assign(emptyData(), data);
}
