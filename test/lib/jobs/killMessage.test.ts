import { MalformedKillMessageError, killMessageData, parseKillMessageData, validateKillMessage } from '../../../lib/jobs/killMessage';
import { MAX_USERS_PER_MESSAGE } from '../../../lib/core/limits';

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
  ['a list too long', Buffer.from(JSON.stringify({ users: Array.from({ length: MAX_USERS_PER_MESSAGE + 1 }, (_, i) => `u${i}`) })), 'at most 1000 users'],
  ['a date without zone', Buffer.from('{"user": "a", "issuedAt": "2026-01-01T00:00:00"}'), 'issuedAt: must be an ISO 8601'],
  ['a date only', Buffer.from('{"user": "a", "issuedAt": "2026-01-01"}'), 'issuedAt:'],
  ['an epoch number', Buffer.from('{"user": "a", "issuedAt": 1767225600}'), 'issuedAt:'],
  ['a continuation without issuedAt', Buffer.from('{"user": "a", "continuation": 1}'), 'issuedAt: required in a continuation'],
  ['a continuation of 0', Buffer.from('{"user": "a", "issuedAt": "2026-01-01T00:00:00Z", "continuation": 0}'), 'continuation:'],
  ['a fractional continuation', Buffer.from('{"user": "a", "issuedAt": "2026-01-01T00:00:00Z", "continuation": 1.5}'), 'continuation:'],
  ['a continuation on a list', Buffer.from('{"users": ["a"], "issuedAt": "2026-01-01T00:00:00Z", "continuation": 1}'), 'unknown field(s) "continuation"'],
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
