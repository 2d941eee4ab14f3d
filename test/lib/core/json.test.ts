import { InvalidKeyError, InvalidValueError } from '../../../lib/core/errors';
import { assertJsonValue, assertValidKey, dataNodes, emptyData, type JsonValue } from '../../../lib/core/json';
import { MAX_DATA_NODES, MAX_KEY_BYTES } from '../../../lib/core/limits';

/** What may be stored in a session, and what the refusal tells the caller (the JSON error body's message). */
describe('data keys', () => {
  test('a key of exactly 256 bytes is accepted, 257 bytes are refused, counted in UTF-8', () => {
    expect(MAX_KEY_BYTES).toBe(256);
    expect(() => assertValidKey('k'.repeat(256))).not.toThrow();
    expect(() => assertValidKey('ü'.repeat(128))).not.toThrow();
    expect(() => assertValidKey('k'.repeat(257))).toThrow(new InvalidKeyError('a key may have at most 256 bytes'));
    expect(() => assertValidKey('ü'.repeat(128) + 'k')).toThrow(InvalidKeyError);
  });

  test('empty or non-string keys are refused with a reason', () => {
    expect(() => assertValidKey('')).toThrow(new InvalidKeyError('a key must be a non-empty string'));
    expect(() => assertValidKey(1)).toThrow(new InvalidKeyError('a key must be a non-empty string'));
  });

  test('only keys of the whole form __name__ are reserved', () => {
    for (const k of ['__key__', '____', '__proto__', '__a\nb__']) {
      expect(() => assertValidKey(k)).toThrow(new InvalidKeyError('keys of the form __name__ are reserved'));
    }
    for (const k of ['x__key__', '__key__x', '__key', 'key__', '_a_']) expect(() => assertValidKey(k)).not.toThrow();
  });

  test('a key with a lone surrogate is refused', () => {
    expect(() => assertValidKey('a\uD800')).toThrow(new InvalidKeyError('a key must be well-formed unicode'));
  });
});

describe('data values', () => {
  const deep = (levels: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < levels; i++) v = [v];
    return v;
  };
  const deepObject = (levels: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < levels; i++) v = { a: v };
    return v;
  };

  test('nesting of exactly 64 levels is accepted, 65 are refused (arrays and objects alike)', () => {
    expect(() => assertJsonValue(deep(64))).not.toThrow();
    expect(() => assertJsonValue(deepObject(64))).not.toThrow();
    expect(() => assertJsonValue(deep(65))).toThrow(InvalidValueError);
    expect(() => assertJsonValue(deepObject(65))).toThrow(/nested deeper than 64 levels/);
  });

  test('the refusal names the offending path', () => {
    expect(() => assertJsonValue({ a: [1, { b: undefined }] })).toThrow(
      new InvalidValueError('value.a[1].b is a undefined, not a JSON value'),
    );
    expect(() => assertJsonValue({ n: NaN })).toThrow(new InvalidValueError('value.n is not a finite number'));
    expect(() => assertJsonValue(['\uDC00'])).toThrow(new InvalidValueError('value[0] has a lone surrogate'));
    expect(() => assertJsonValue({ d: new Date(0) })).toThrow(new InvalidValueError('value.d is not a plain object'));
  });

  test('a cycle is refused as circular; a value shared twice (no cycle) is fine', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => assertJsonValue(cyclic)).toThrow(new InvalidValueError('value.self is circular'));
    const shared = { x: 1 };
    expect(() => assertJsonValue({ a: shared, b: [shared, shared] })).not.toThrow();
  });

  test('objects without a prototype are plain objects', () => {
    expect(() => assertJsonValue(Object.assign(Object.create(null) as object, { a: 1 }))).not.toThrow();
  });
});

describe('JSON values in all the data (MAX_DATA_NODES)', () => {
  const data = (values: Record<string, JsonValue>) => Object.assign(emptyData(), values);

  test('every object, array, string, number, boolean and null counts, at any depth; keys do not', () => {
    expect(MAX_DATA_NODES).toBe(100_000);
    expect(dataNodes(data({}))).toBe(0);
    expect(dataNodes(data({ a: 1, b: 'x', c: null, d: false }))).toBe(4);
    expect(dataNodes(data({ cart: [{ sku: 'A1', qty: 2 }], language: 'de' }))).toBe(5);
    expect(dataNodes(data({ v: [[[]]] }))).toBe(3);
    expect(dataNodes(data({ v: Array.from({ length: 1000 }, () => [[[]]]) }))).toBe(3001);
  });

  test('counting stops just past the bound, so it costs no more than the bound whatever the data', () => {
    const wide = data({ v: Array.from({ length: 50_000 }, () => [[[]]]) });
    expect(dataNodes(wide)).toBe(150_001);
    expect(dataNodes(wide, 1000)).toBe(1001);
    expect(dataNodes(wide, 150_001)).toBe(150_001);
  });

  test('data stored deeper than the depth limit (before it existed) is counted without recursion', () => {
    let v: JsonValue = 1;
    for (let i = 0; i < 200_000; i++) v = [v];
    expect(dataNodes(data({ v }))).toBe(200_001);
  });
});
