import {
  encodeKillMessage,
  isoTime,
  killMessageData,
  MalformedKillMessageError,
  parseIssuedAt,
  parseKillMessageData,
  validateKillMessage,
} from '../../../lib/jobs/killMessage';
import { MAX_CONTINUATIONS, MAX_MESSAGE_BYTES, MAX_USERS_PER_MESSAGE } from '../../../lib/core/limits';

// The schemas are built on first use and then kept. Built here, outside any test, the mutation run
// counts their code as reached by every test of the file; otherwise it credits only the first test
// that happened to build them, and runs only that one against a changed schema.
validateKillMessage({ user: 'warm-up' });

/** The message of the MalformedKillMessageError that parsing `data` throws (the reason an operator reads in the log). */
const reason = (data: Buffer | string | undefined | null) => {
  try {
    parseKillMessageData(data);
  } catch (e) {
    expect(e).toBeInstanceOf(MalformedKillMessageError);
    expect((e as Error).name).toBe('MalformedKillMessageError');
    return (e as Error).message;
  }
  throw new Error('accepted');
};

const parse = (value: unknown) => parseKillMessageData(Buffer.from(JSON.stringify(value)));

test('the public forms', () => {
  expect(parse({ user: 'a' })).toEqual({ kind: 'kill', user: 'a', issuedAt: undefined, continuation: 0 });
  expect(parse({ user: '__guest__' })).toEqual({ kind: 'kill', user: '__guest__', issuedAt: undefined, continuation: 0 });
  expect(parse({ user: null })).toEqual({ kind: 'kill', user: null, issuedAt: undefined, continuation: 0 });
  expect(parse({ users: ['a', 'b', 'a'] })).toEqual({ kind: 'fanOut', users: ['a', 'b'], issuedAt: undefined });
  expect(parse({ user: 'a', issuedAt: '2026-01-01T12:00:00+02:00' })).toMatchObject({ issuedAt: new Date('2026-01-01T10:00:00Z') });
  expect(parse({ user: 'ü'.repeat(250) })).toMatchObject({ user: 'ü'.repeat(250) });
});

test('the internal continuation forms', () => {
  expect(parse({ user: 'a', issuedAt: '2026-01-01T00:00:00.000Z', continuation: 3 })).toEqual({
    kind: 'kill',
    user: 'a',
    issuedAt: new Date('2026-01-01T00:00:00Z'),
    continuation: 3,
  });
  expect(parse({ cleanup: {} })).toEqual({ kind: 'cleanup', continuation: 0 });
  expect(parse({ cleanup: { continuation: 2 } })).toEqual({ kind: 'cleanup', continuation: 2 });
});

test.each([
  ['no data', undefined, 'no data'],
  ['empty data', Buffer.alloc(0), 'no data'],
  ['not UTF-8', Buffer.from([0xc3, 0x28]), 'not UTF-8'],
  ['not JSON', Buffer.from('{user: a}'), 'not JSON'],
  ['a string', Buffer.from('"a"'), 'JSON object'],
  ['null', Buffer.from('null'), 'JSON object'],
  ['an array', Buffer.from('[]'), 'JSON object'],
  ['no target', Buffer.from('{}'), 'needs "user", "users" or "cleanup"'],
  ['a typo', Buffer.from('{"usr": "a"}'), 'needs "user"'],
  ['an unknown field', Buffer.from('{"user": "a", "all": true}'), 'unknown field(s) "all"'],
  ['user and users', Buffer.from('{"user": "a", "users": ["b"]}'), 'unknown field(s) "user"'],
  ['a number', Buffer.from('{"user": 1}'), 'user:'],
  ['an empty user', Buffer.from('{"user": ""}'), 'user: must not be empty'],
  ['a user over 500 bytes', Buffer.from(JSON.stringify({ user: 'ü'.repeat(251) })), 'at most 500 bytes'],
  ['an empty list', Buffer.from('{"users": []}'), 'users: must not be empty'],
  ['null in a list', Buffer.from('{"users": [null]}'), 'users.0:'],
  [
    'a list too long',
    Buffer.from(JSON.stringify({ users: Array.from({ length: MAX_USERS_PER_MESSAGE + 1 }, (_, i) => `u${i}`) })),
    'at most 1000 users',
  ],
  ['a date without zone', Buffer.from('{"user": "a", "issuedAt": "2026-01-01T00:00:00"}'), 'issuedAt: must be an ISO 8601'],
  ['a date only', Buffer.from('{"user": "a", "issuedAt": "2026-01-01"}'), 'issuedAt:'],
  ['an epoch number', Buffer.from('{"user": "a", "issuedAt": 1767225600}'), 'issuedAt:'],
  ['a continuation without issuedAt', Buffer.from('{"user": "a", "continuation": 1}'), 'issuedAt: required in a continuation'],
  ['a continuation of 0', Buffer.from('{"user": "a", "issuedAt": "2026-01-01T00:00:00Z", "continuation": 0}'), 'continuation:'],
  ['a fractional continuation', Buffer.from('{"user": "a", "issuedAt": "2026-01-01T00:00:00Z", "continuation": 1.5}'), 'continuation:'],
  [
    'a continuation on a list',
    Buffer.from('{"users": ["a"], "issuedAt": "2026-01-01T00:00:00Z", "continuation": 1}'),
    'unknown field(s) "continuation"',
  ],
  ['a cleanup with a cut-off', Buffer.from('{"cleanup": {"before": "2100-01-01T00:00:00Z"}}'), 'unknown field(s) "before"'],
  ['a cleanup that is not an object', Buffer.from('{"cleanup": true}'), 'cleanup:'],
  ['a cleanup with a target', Buffer.from('{"cleanup": {}, "user": null}'), 'unknown field(s) "user"'],
])('malformed: %s', (_case, data, reason) => {
  let error: unknown;
  try {
    parseKillMessageData(data);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(MalformedKillMessageError);
  expect((error as MalformedKillMessageError).code).toBe('malformed_kill_message');
  expect((error as Error).message).toContain(reason);
});

test('killMessageData builds what the consumer accepts, and refuses what it would not', () => {
  expect(killMessageData({ user: 'a' })).toEqual({ user: 'a' });
  expect(killMessageData({ user: null }, new Date('2026-01-01T00:00:00Z'))).toEqual({ user: null, issuedAt: '2026-01-01T00:00:00.000Z' });
  expect(validateKillMessage(killMessageData({ users: ['a', 'b'] }))).toMatchObject({ kind: 'fanOut', users: ['a', 'b'] });
  expect(() => killMessageData({ user: '' })).toThrow(MalformedKillMessageError);
  expect(() => killMessageData({ users: [] })).toThrow(MalformedKillMessageError);
  expect(() => killMessageData({ user: 'a' }, new Date(NaN))).toThrow(MalformedKillMessageError);
});

test('killMessageData refuses a target whose message the consumer would refuse as too large (ids of escaped characters)', () => {
  // Ids of 500 bytes, mostly U+0001, pass the id rules and are almost 3,000 bytes of JSON text each (\u0001): 351 exceed 1 MiB.
  const escaped = (n: number) => Array.from({ length: n }, (_, i) => `${i}`.padEnd(500, '\u0001'));
  expect(() => killMessageData({ users: escaped(351) })).toThrow(new MalformedKillMessageError('message: larger than 1048576 bytes'));
  const fits = killMessageData({ users: escaped(350) });
  expect(encodeKillMessage(fits).length).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
  expect(parseKillMessageData(encodeKillMessage(fits))).toMatchObject({ kind: 'fanOut' });
  // The largest plain kill (1,000 ids of 500 bytes) is about half the bound.
  const plain = killMessageData({ users: Array.from({ length: 1000 }, (_, i) => `${i}`.padEnd(500, 'x')) });
  expect(encodeKillMessage(plain).length).toBeLessThan(MAX_MESSAGE_BYTES / 2);
});

/** Kill messages at their bounds, and the reason an operator reads in the log for a refused one. */
describe('kill messages', () => {
  test('exactly 1000 users are accepted, 1001 refused', () => {
    expect(MAX_USERS_PER_MESSAGE).toBe(1000);
    const users = Array.from({ length: 1000 }, (_, i) => `u${i}`);
    expect(parseKillMessageData(JSON.stringify({ users }))).toMatchObject({ kind: 'fanOut', users });
    expect(reason(JSON.stringify({ users: [...users, 'x'] }))).toBe('users: must hold at most 1000 users');
  });

  test('a continuation of exactly the maximum is accepted, one more refused', () => {
    expect(MAX_CONTINUATIONS).toBe(10_000);
    const at = '2026-01-01T00:00:00Z';
    expect(parseKillMessageData(JSON.stringify({ user: 'a', issuedAt: at, continuation: 10_000 }))).toMatchObject({ continuation: 10_000 });
    expect(reason(JSON.stringify({ user: 'a', issuedAt: at, continuation: 10_001 }))).toMatch(/^continuation: /);
    expect(parseKillMessageData(JSON.stringify({ cleanup: { continuation: 10_000 } }))).toEqual({ kind: 'cleanup', continuation: 10_000 });
    expect(reason(JSON.stringify({ cleanup: { continuation: 10_001 } }))).toMatch(/^cleanup\.continuation: /);
  });

  test('a message of exactly 1 MiB is read (and refused for its content), one byte more is refused unread', () => {
    expect(MAX_MESSAGE_BYTES).toBe(1024 * 1024);
    const pad = (n: number) => Buffer.from(JSON.stringify({ user: 'a', pad: 'x'.repeat(n - 21) }));
    expect(pad(MAX_MESSAGE_BYTES)).toHaveLength(MAX_MESSAGE_BYTES);
    expect(reason(pad(MAX_MESSAGE_BYTES))).toBe('unknown field(s) "pad"');
    expect(reason(pad(MAX_MESSAGE_BYTES + 1))).toBe('message: larger than 1048576 bytes');
  });

  test('the exact reasons of the basic refusals', () => {
    expect(reason(null)).toBe('message: no data');
    expect(reason('')).toBe('message: no data');
    expect(reason(Buffer.from([0xff]))).toBe('message: data is not UTF-8');
    expect(reason('nope')).toBe('message: data is not JSON');
    expect(reason('[1]')).toBe('message: must be a JSON object');
    expect(reason('{}')).toBe('message: needs "user", "users" or "cleanup"');
    expect(reason('{"user":"a","x":1,"y":2}')).toBe('unknown field(s) "x", "y"');
    expect(reason('{"user":""}')).toBe('user: must not be empty');
    expect(reason(JSON.stringify({ user: 'u'.repeat(501) }))).toBe('user: must be at most 500 bytes (UTF-8)');
    expect(reason('{"users":[]}')).toBe('users: must not be empty');
    expect(reason(JSON.stringify({ user: 'a\ud800' }))).toBe('user: must be well-formed unicode (no lone surrogate)');
    expect(reason(JSON.stringify({ users: ['a', ''] }))).toBe('users.1: must not be empty');
    expect(reason('{"user":"a","issuedAt":"2026-01-01T00:00:00Z","continuation":0}')).toMatch(/^continuation: /);
    expect(parseKillMessageData('{"user":"a","issuedAt":"2026-01-01T00:00:00Z","continuation":2}')).toMatchObject({ continuation: 2 });
    expect(reason('{"user":"a","issuedAt":"2026-01-01"}')).toBe(
      'issuedAt: must be an ISO 8601 date-time with Z or an offset, e.g. 2026-01-01T12:00:00Z',
    );
  });

  test('text data is taken as it is; a user of exactly 500 bytes is accepted', () => {
    expect(parseKillMessageData(JSON.stringify({ user: 'u'.repeat(500) }))).toMatchObject({ kind: 'kill', user: 'u'.repeat(500) });
    expect(validateKillMessage({ users: ['a'], issuedAt: '2026-01-01T00:00:00Z' })).toEqual({
      kind: 'fanOut',
      users: ['a'],
      issuedAt: new Date('2026-01-01T00:00:00Z'),
    });
  });

  test('issuedAt parsing and printing', () => {
    expect(parseIssuedAt('2026-01-01T01:00:00+01:00')).toEqual(new Date('2026-01-01T00:00:00Z'));
    expect(() => parseIssuedAt('yesterday')).toThrow(
      new MalformedKillMessageError('message: must be an ISO 8601 date-time with Z or an offset, e.g. 2026-01-01T12:00:00Z'),
    );
    expect(isoTime(new Date(0))).toBe('1970-01-01T00:00:00.000Z');
    expect(() => isoTime(new Date(NaN))).toThrow(new MalformedKillMessageError('issuedAt: is not a real date'));
    expect(encodeKillMessage({ user: 'ä' }).toString('utf8')).toBe('{"user":"ä"}');
  });
});

describe('the resweep form (viur format)', () => {
  const keys = ['A'.repeat(42), 'b1'.repeat(21)];

  test('is read with its keys, time and continuation', () => {
    expect(validateKillMessage({ resweep: { keys, at: '2026-01-01T12:00:00Z' } })).toEqual({
      kind: 'resweep',
      keys,
      at: new Date('2026-01-01T12:00:00Z'),
      continuation: 0,
    });
    expect(validateKillMessage({ resweep: { keys, at: '2026-01-01T12:00:00Z', continuation: 3 } })).toMatchObject({ continuation: 3 });
  });

  test.each([
    [{ resweep: { keys: [], at: '2026-01-01T12:00:00Z' } }],
    [{ resweep: { keys: ['a/b'], at: '2026-01-01T12:00:00Z' } }],
    [{ resweep: { keys: [''], at: '2026-01-01T12:00:00Z' } }],
    [{ resweep: { keys, at: 'soon' } }],
    [{ resweep: { keys } }],
    [{ resweep: { keys, at: '2026-01-01T12:00:00Z', extra: 1 } }],
    [{ resweep: { keys, at: '2026-01-01T12:00:00Z', continuation: MAX_CONTINUATIONS + 1 } }],
    [{ resweep: { keys: Array.from({ length: 20_001 }, () => 'a'), at: '2026-01-01T12:00:00Z' } }],
  ])('is malformed: %j', (value) => {
    expect(() => validateKillMessage(value)).toThrow(MalformedKillMessageError);
  });
});
