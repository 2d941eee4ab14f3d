import { InvalidValueError } from '../../../lib/core/errors';
import { entityJson, isUnindexableString, propertyValue, pythonStrSize, toJson } from '../../../lib/viur/entity';
import { EVERY_TYPE_JSON, everyType, LONG_TEXT, SHORT_TEXT } from '../../support/viurSessionFixtures';

describe('ViUR long-string rule (db/utils.py:34, sys.getsizeof >= 1500 on CPython 3.12+)', () => {
  test.each([
    // '' 41, 'H' 42 and 'Öl' 59 as CPython 3.12 reports them; the wider kinds follow PEP 393's widths.
    ['', 41],
    ['H', 42],
    ['Öl', 59],
    ['Āa', 62],
    ['a😀', 68],
  ])('sys.getsizeof(%j) is %i', (s, size) => {
    expect(pythonStrSize(s)).toBe(size);
  });

  test('1,459 ASCII characters are the first length ViUR excludes from indexes', () => {
    expect(isUnindexableString(LONG_TEXT)).toBe(true);
    expect(isUnindexableString(SHORT_TEXT)).toBe(false);
  });

  test('a string of more than 1,500 UTF-8 bytes is excluded even when ViUR would index it (Datastore refuses it indexed)', () => {
    const s = 'é'.repeat(800); // getsizeof 857, 1,600 bytes
    expect(pythonStrSize(s)).toBeLessThan(1500);
    expect(isUnindexableString(s)).toBe(true);
  });
});

describe('JSON written as ViUR`s session[key] = value stores it', () => {
  test('scalars: an integral number is an int, any other a float; strings, booleans, null', () => {
    expect(propertyValue(3)).toEqual({ integerValue: '3' });
    expect(propertyValue(-0.5)).toEqual({ doubleValue: -0.5 });
    expect(propertyValue(2 ** 60)).toEqual({ doubleValue: 2 ** 60 });
    expect(propertyValue('de')).toEqual({ stringValue: 'de' });
    expect(propertyValue(false)).toEqual({ booleanValue: false });
    expect(propertyValue(null)).toEqual({ nullValue: 'NULL_VALUE' });
  });

  test('a list is an array, a dict an entity without key, all indexed', () => {
    expect(propertyValue([1, 'a', { b: null }])).toEqual({
      arrayValue: {
        values: [{ integerValue: '1' }, { stringValue: 'a' }, { entityValue: { properties: { b: { nullValue: 'NULL_VALUE' } } } }],
      },
    });
  });

  test('a long string is excluded; a list holding one has every element excluded, not the list; a dict keeps the flag inside', () => {
    expect(propertyValue(LONG_TEXT)).toEqual({ stringValue: LONG_TEXT, excludeFromIndexes: true });
    expect(propertyValue(['x', LONG_TEXT])).toEqual({
      arrayValue: {
        values: [
          { stringValue: 'x', excludeFromIndexes: true },
          { stringValue: LONG_TEXT, excludeFromIndexes: true },
        ],
      },
    });
    expect(propertyValue({ text: LONG_TEXT, n: 1, inner: { t: 'y' } })).toEqual({
      entityValue: {
        properties: {
          text: { stringValue: LONG_TEXT, excludeFromIndexes: true },
          n: { integerValue: '1' },
          inner: { entityValue: { properties: { t: { stringValue: 'y' } } } },
        },
      },
    });
  });

  test('what Datastore cannot store or JSON cannot say is refused', () => {
    expect(() => propertyValue([[1]])).toThrow(InvalidValueError);
    expect(() => propertyValue(NaN)).toThrow(InvalidValueError);
  });
});

describe('JSON forms of stored values', () => {
  test('every type a ViUR session holds reads as its documented form', () => {
    const values = everyType('ns1');
    expect(entityJson(values)).toEqual({ ...EVERY_TYPE_JSON, ref: { $key: { path: [{ kind: 'order', id: '42' }], namespace: 'ns1' } } });
  });

  test('an entity with a key shows its key and properties; non-finite doubles and timestamps keep their precision', () => {
    expect(toJson({ entityValue: { key: { path: [{ kind: 'user', name: 'alice' }] }, properties: { a: { integerValue: '1' } } } })).toEqual(
      {
        $key: { path: [{ kind: 'user', name: 'alice' }] },
        $properties: { a: 1 },
      },
    );
    expect(toJson({ doubleValue: Infinity })).toEqual({ $double: 'Infinity' });
    expect(toJson({ timestampValue: { seconds: '0', nanos: 5 } })).toEqual({ $timestamp: '1970-01-01T00:00:00.000000005Z' });
    expect(toJson({ timestampValue: { seconds: '0', nanos: 0 } })).toEqual({ $timestamp: '1970-01-01T00:00:00Z' });
  });
});
