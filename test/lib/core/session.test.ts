import { inspect } from 'node:util';
import {
  DataTooLargeError,
  InvalidKeyError,
  InvalidUserError,
  InvalidValueError,
  KeyNotFoundError,
  TooManyKeysError,
} from '../../../lib/core/errors';
import { digest } from '../../../lib/core/ids';
import { dataSize, emptyData, type JsonValue } from '../../../lib/core/json';
import { GUEST_USER, MAX_DATA_NODES, MAX_USER_BYTES } from '../../../lib/core/limits';
import { cookieFrom } from '../../support/fixtures';
import { setup, started } from '../../support/sessions';

/*
 * The Session object (lib/core/session.ts): its map API and the limits on what it holds, reset,
 * login and logout, and its security keys. How the manager loads, saves and rotates sessions is in
 * manager.test.ts.
 */

describe('the map API', () => {
  test('has / get with default / getOrThrow / set / delete / merge / items', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(s.has('a')).toBe(false);
    expect(s.get('a')).toBeUndefined();
    expect(s.get('a', 'dflt')).toBe('dflt');
    expect(() => s.getOrThrow('a')).toThrow(KeyNotFoundError);
    expect(() => s.delete('a')).toThrow(KeyNotFoundError);
    s.set('a', { n: [1] });
    expect(s.getOrThrow('a')).toEqual({ n: [1] });
    s.merge({ b: 2, c: null });
    expect(s.items()).toEqual([
      ['a', { n: [1] }],
      ['b', 2],
      ['c', null],
    ]);
    s.delete('b');
    expect(s.has('b')).toBe(false);
    expect(s.entries().map(([k]) => k)).toEqual(['a', 'c']);
  });

  test('values are copied in and out: mutating a returned value changes nothing', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    const v = { list: [1] };
    s.set('v', v);
    v.list.push(2);
    (s.get('v') as { list: number[] }).list.push(3);
    expect(s.get('v')).toEqual({ list: [1] });
  });

  test.each([
    ['undefined', undefined],
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['a Date', new Date()],
    ['a Map', new Map()],
    ['a function', () => 1],
    ['a bigint', BigInt(1)],
    ['a nested undefined', { a: [undefined] }],
    ['a lone surrogate', '\ud800'],
  ])('a non-JSON value (%s) is refused with InvalidValueError', async (_label, value) => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(() => s.set('k', value as never)).toThrow(InvalidValueError);
    expect(s.has('k')).toBe(false);
  });

  test('a circular value is refused', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    expect(() => s.set('k', loop as never)).toThrow(InvalidValueError);
  });

  test.each(['', '__proto__', '__key__', 'x'.repeat(257)])('the key %p is refused', async (key) => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(() => s.set(key, 1)).toThrow(InvalidKeyError);
  });

  test('merge is all or nothing', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(() => s.merge({ good: 1, __proto__x__: 2, ['__bad__']: 3 })).toThrow(InvalidKeyError);
    expect(s.has('good')).toBe(false);
  });

  test('data over the size limit is refused and nothing is recorded', async () => {
    const { m } = setup({ maxDataBytes: 2000 });
    const s = await m.load(undefined);
    s.set('small', 'x'.repeat(1000));
    expect(() => s.set('big', 'x'.repeat(1000))).toThrow(DataTooLargeError);
    expect(s.has('big')).toBe(false);
    expect((await m.save(s)).written).toBe(true);
  });

  test('integers beyond 2^53 keep the double they were given (JSON numbers are doubles)', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    s.set('n', 2 ** 53 + 2);
    const { cookie } = { cookie: cookieFrom((await m.save(s)).setCookie) };
    expect((await m.load(cookie)).get('n')).toBe(9007199254740994);
  });

  test('secrets are not shown by JSON.stringify or console.log', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    s.set('a', 1);
    const key = s.getSecurityKey();
    const out = await m.save(s);
    const id = cookieFrom(out.setCookie).split('=')[1];
    const { inspect } = await import('node:util');
    for (const text of [JSON.stringify(s), inspect(s, { depth: 10, showHidden: true })]) {
      expect(text).not.toContain(id);
      expect(text).not.toContain(key);
      expect(text).not.toContain(out.staticSecurityKey!);
    }
  });

  test('get with a fallback, getOrThrow and delete of a missing key', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(s.get('missing', 'dflt')).toBe('dflt');
    s.set('n', 0);
    expect(s.get('n', 5)).toBe(0);
    expect(s.getOrThrow('n')).toBe(0);
    expect(() => s.getOrThrow('missing')).toThrow(new KeyNotFoundError('missing'));
    expect(() => s.delete('missing')).toThrow(KeyNotFoundError);
    expect(s.items()).toEqual([['n', 0]]);
    expect(s.entries()).toEqual([['n', 0]]);
  });

  test('neither JSON nor inspect shows the id or the keys', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    s.set('a', 1);
    const key = s.getSecurityKey();
    expect(JSON.stringify(s)).toBe('{"user":null,"data":{"a":1}}');
    expect(inspect(s)).toBe('Session { user: null, keys: ["a"] }');
    expect(JSON.stringify(s) + inspect(s)).not.toContain(key);
  });
});

describe('limits', () => {
  test('data exactly at the size limit (its JSON text in UTF-8) is accepted, one byte more is refused and changes nothing', async () => {
    const limit = 2048;
    const { m } = setup({ maxDataBytes: limit });
    const s = await m.load(undefined);
    const frame = dataSize(Object.assign(emptyData(), { k: '' }));
    const fill = 'x'.repeat(limit - frame);
    expect(dataSize(Object.assign(emptyData(), { k: fill }))).toBe(limit);
    s.set('k', fill);
    expect(() => s.set('k', fill + 'y')).toThrow(new DataTooLargeError(limit + 1, limit));
    expect(s.get('k')).toBe(fill);
    expect(() => s.merge({ k2: 'z' })).toThrow(DataTooLargeError);
    expect(s.has('k2')).toBe(false);
  });

  test('a user id of exactly 500 bytes is accepted, 501 refused; empty and the guest name are not user ids', async () => {
    expect(MAX_USER_BYTES).toBe(500);
    const { m } = setup();
    const s = await m.load(undefined);
    s.login('ü'.repeat(250));
    expect(s.user).toBe('ü'.repeat(250));
    expect(() => s.login('u'.repeat(501))).toThrow(new InvalidUserError('a user id may have at most 500 bytes'));
    expect(() => s.login('')).toThrow(new InvalidUserError('a user id must be a non-empty string'));
    expect(() => s.login(GUEST_USER)).toThrow(new InvalidUserError('__guest__ is not a user id'));
  });

  test('security keys: 1 to maxSecurityKeys at once; beyond the bound the oldest stop being valid', async () => {
    const { m } = setup({ maxSecurityKeys: 3 });
    const s = await m.load(undefined);
    expect(s.getSecurityKeys(3)).toHaveLength(3);
    for (const n of [0, 4, 1.5]) expect(() => s.getSecurityKeys(n)).toThrow(new RangeError('count must be an integer from 1 to 3'));
    const [k1, k2] = s.getSecurityKeys(2);
    const [k3] = s.getSecurityKeys(1);
    const [k4] = s.getSecurityKeys(1);
    // Held now: k2, k3, k4 (k1 and the first three were dropped, oldest first).
    expect(s.validateSecurityKey(k1)).toBe(false);
    expect(s.validateSecurityKey(k2)).toBe(true);
    expect(s.validateSecurityKey(k2)).toBe(false);
    expect(s.validateSecurityKey(k4)).toBe(true);
    expect(s.validateSecurityKey(k3)).toBe(true);
    expect(s.validateSecurityKey('junk')).toBe(false);
  });

  test('the static key validates only itself', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    s.set('a', 1);
    const { staticSecurityKey } = await m.save(s);
    expect(s.validateStaticSecurityKey(staticSecurityKey!)).toBe(true);
    expect(s.validateStaticSecurityKey('B'.repeat(43))).toBe(false);
    expect(s.validateStaticSecurityKey(`${staticSecurityKey}x`)).toBe(false);
  });

  test('exactly maxDataKeys keys are accepted, one more is refused and not recorded; deleting makes room', async () => {
    const { m } = setup({ maxDataKeys: 3 });
    const s = await m.load(undefined);
    s.merge({ a: 1, b: 2, c: 3 });
    expect(() => s.set('d', 4)).toThrow(new TooManyKeysError(4, 3));
    expect(s.has('d')).toBe(false);
    s.set('c', 30);
    s.delete('a');
    s.set('d', 4);
    expect(Object.keys(s.toObject()).sort()).toEqual(['b', 'c', 'd']);
  });

  test('deleting keys only never fails on the limits, even when the stored data grew meanwhile', async () => {
    const { m } = setup({ maxDataKeys: 2 });
    const { cookie } = await started(m);
    const s = await m.load(cookie);
    s.delete('a');
    expect((await m.save(s)).written).toBe(true);
    expect((await m.load(cookie)).has('a')).toBe(false);
  });
});

describe('JSON values in all the data (MAX_DATA_NODES)', () => {
  /** `n` × `[[[]]]`: 1 + 3n JSON values. */
  const nested = (n: number): JsonValue[] => Array.from({ length: n }, () => [[[]]]);
  const overBound = new DataTooLargeError(
    MAX_DATA_NODES + 1,
    MAX_DATA_NODES,
    `session data would hold more than ${MAX_DATA_NODES} JSON values, the limit is ${MAX_DATA_NODES}`,
  );

  test('exactly MAX_DATA_NODES values in all the data are accepted, one more is refused (too_large, 413) and not recorded', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    s.set('a', nested((MAX_DATA_NODES - 1) / 3)); // 100,000 values
    expect(() => s.set('b', 1)).toThrow(overBound);
    expect(() => s.merge({ c: [], d: 1 })).toThrow(overBound);
    expect(() => s.setParsed('b', 1)).toThrow(DataTooLargeError);
    expect(() => s.mergeParsed({ c: [] })).toThrow(DataTooLargeError);
    expect(Object.keys(s.toObject())).toEqual(['a']);
    expect(s.operations).toHaveLength(1);
    expect(overBound).toMatchObject({ code: 'too_large', status: 413 });
    // Replacing the value with a smaller one fits.
    s.set('a', nested(10));
    s.set('b', 1);
    expect(Object.keys(s.toObject())).toEqual(['a', 'b']);
  });

  test('a session stored over the bound loads and reads; a change that leaves it over is refused, deleting keys works', async () => {
    const { m, store } = setup();
    const { cookie, session } = await started(m, { small: 1 });
    const key = session.loadedKey ?? digest(session.id);
    await store.update(key, (current) => ({
      writes: {
        put: [{ key, session: { ...current!, data: Object.assign(emptyData(), { big: nested(111_000), small: 1 }) } }],
        delete: [],
      },
      result: null,
    }));
    const s = await m.load(cookie);
    expect((s.get('big') as unknown[]).length).toBe(111_000);
    expect(() => s.set('other', 2)).toThrow(overBound);
    s.delete('small');
    expect((await m.save(s)).written).toBe(true);
    const next = await m.load(cookie);
    next.set('big', 'small now');
    expect((await m.save(next)).written).toBe(true);
    expect((await m.load(cookie)).toObject()).toEqual({ big: 'small now' });
  });

  test('the replay at save checks the bound on what is stored then: two requests that each fit but not together', async () => {
    const { m } = setup();
    const { cookie } = await started(m, { small: 1 });
    const one = await m.load(cookie);
    const two = await m.load(cookie);
    one.set('x', nested(20_000));
    two.set('y', nested(20_000));
    await m.save(one);
    await expect(m.save(two)).rejects.toThrow(overBound);
    expect(Object.keys((await m.load(cookie)).toObject()).sort()).toEqual(['small', 'x']);
  });

  test('setParsed and mergeParsed keep the value given (no copy); set, merge and every read copy', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    const given = { list: [1] };
    s.setParsed('p', given);
    s.mergeParsed({ q: given });
    const op = s.operations.map((o) => (o.type === 'set' ? o.value : null));
    expect(op[0]).toBe(given);
    expect(op[1]).toBe(given);
    s.set('r', given);
    expect((s.operations.at(-1) as { value: unknown }).value).not.toBe(given);
    expect(s.get('p')).not.toBe(given);
    expect(s.get('p')).toEqual(given);
  });
});

describe('reset, login and logout', () => {
  test('reset deletes the stored session and starts an empty one under a new id', async () => {
    const { m, store } = setup();
    const { cookie } = await started(m);
    const { outcome } = await m.withSession(cookie, (s) => {
      s.reset();
      s.markChanged();
    });
    // The old entity is a tombstone: not alive, no data; its id answers session_ended (issue 12).
    const old = (await store.get(digest(cookie.split('=')[1])))!;
    expect([m.isAlive(old), old.data]).toEqual([false, {}]);
    const fresh = cookieFrom(outcome.setCookie);
    expect(fresh).not.toBe(cookie);
    expect((await m.load(fresh)).entries()).toEqual([]);
    await expect(m.load(cookie)).rejects.toMatchObject({ code: 'session_ended' });
  });

  test('login keeps only persistentFieldsOnLogin, binds the user under a new id, and reveals the new static key once', async () => {
    const { m } = setup({ persistentFieldsOnLogin: ['language', 'cart'] });
    const { cookie } = await started(m, { language: 'de', cart: 3, secret: 'x' });
    const { outcome, session } = await m.withSession(cookie, (s) => s.login('user-1'));
    const loggedIn = cookieFrom(outcome.setCookie);
    expect(loggedIn).not.toBe(cookie);
    expect(session.user).toBe('user-1');
    const s = await m.load(loggedIn);
    expect(s.user).toBe('user-1');
    expect(s.toObject()).toEqual({ language: 'de', cart: 3 });
    expect(s.validateStaticSecurityKey(outcome.staticSecurityKey!)).toBe(true);
    await expect(m.load(cookie)).rejects.toMatchObject({ code: 'session_ended' });
    const again = await m.withSession(loggedIn, (x) => x.set('y', 1));
    expect(again.outcome.staticSecurityKey).toBeNull();
  });

  test('logout keeps only persistentFieldsOnLogout and leaves a guest session', async () => {
    const { m } = setup({ persistentFieldsOnLogout: ['language'] });
    const { cookie } = await started(m, { language: 'fr', other: 1 });
    const login = await m.withSession(cookie, (s) => s.login('u'));
    const out = await m.withSession(cookieFrom(login.outcome.setCookie), (s) => s.logout());
    const guest = await m.load(cookieFrom(out.outcome.setCookie));
    expect(guest.user).toBeNull();
    expect(guest.toObject()).toEqual({ language: 'fr' });
  });

  test('login refuses the guest marker and empty ids', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(() => s.login('__guest__')).toThrow(InvalidUserError);
    expect(() => s.login('')).toThrow(InvalidUserError);
  });

  test('a user id that is not a string or not well-formed unicode is refused with its reason', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    expect(() => s.login(42 as unknown as string)).toThrow(new InvalidUserError('a user id must be a non-empty string'));
    expect(() => s.login('a\ud800')).toThrow(new InvalidUserError('a user id must be well-formed unicode (no lone surrogate)'));
    expect(s.user).toBeNull();
  });
});

describe('security keys', () => {
  test('a one-time key persists a new session, validates once, and is then spent', async () => {
    const { m } = setup();
    const s = await m.load(undefined);
    const key = s.getSecurityKey();
    const out = await m.save(s);
    expect(out.written).toBe(true);
    const cookie = cookieFrom(out.setCookie);
    expect((await m.withSession(cookie, (x) => x.validateSecurityKey(key))).result).toBe(true);
    expect((await m.withSession(cookie, (x) => x.validateSecurityKey(key))).result).toBe(false);
  });

  test('several keys are valid at once, each once; beyond the bound the oldest is dropped', async () => {
    const { m } = setup({ maxSecurityKeys: 3 });
    const s = await m.load(undefined);
    const keys = s.getSecurityKeys(3);
    const newest = s.getSecurityKey();
    const cookie = cookieFrom((await m.save(s)).setCookie);
    expect((await m.withSession(cookie, (x) => x.validateSecurityKey(keys[0]))).result).toBe(false);
    for (const k of [keys[1], keys[2], newest]) expect((await m.withSession(cookie, (x) => x.validateSecurityKey(k))).result).toBe(true);
    expect(() => s.getSecurityKeys(4)).toThrow(RangeError);
  });

  test("wrong, malformed and other sessions' keys are refused", async () => {
    const { m } = setup();
    const a = await m.load(undefined);
    const keyA = a.getSecurityKey();
    await m.save(a);
    const b = await m.load(undefined);
    b.getSecurityKey();
    expect(b.validateSecurityKey(keyA)).toBe(false);
    expect(b.validateSecurityKey('short')).toBe(false);
    expect(b.validateSecurityKey('')).toBe(false);
  });

  test('the static key validates every time; a wrong one never', async () => {
    const { m } = setup();
    const { out, cookie } = await started(m);
    const s = await m.load(cookie);
    expect(s.validateStaticSecurityKey(out.staticSecurityKey!)).toBe(true);
    expect(s.validateStaticSecurityKey(out.staticSecurityKey!)).toBe(true);
    expect(s.validateStaticSecurityKey('B'.repeat(43))).toBe(false);
  });
});
