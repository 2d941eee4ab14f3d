import { encodeKillMessage, isoTime, MalformedKillMessageError, parseIssuedAt, parseKillMessageData, validateKillMessage } from '../../../lib/jobs/killMessage';
import { MAX_CONTINUATIONS, MAX_MESSAGE_BYTES, MAX_USERS_PER_MESSAGE } from '../../../lib/core/limits';

// The schemas are built on first use and then kept. Built here, outside any test, the mutation run
// counts their code as reached by every test of the file; otherwise it credits only the first test
// that happened to build them, and runs only that one against a changed schema.
validateKillMessage({ user: 'warm-up' });

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
    expect(reason('{"user":"a","issuedAt":"2026-01-01"}')).toBe('issuedAt: must be an ISO 8601 date-time with Z or an offset, e.g. 2026-01-01T12:00:00Z');
  });

  test('text data is taken as it is; a user of exactly 500 bytes is accepted', () => {
    expect(parseKillMessageData(JSON.stringify({ user: 'u'.repeat(500) }))).toMatchObject({ kind: 'kill', user: 'u'.repeat(500) });
    expect(validateKillMessage({ users: ['a'], issuedAt: '2026-01-01T00:00:00Z' })).toEqual({ kind: 'fanOut', users: ['a'], issuedAt: new Date('2026-01-01T00:00:00Z') });
  });

  test('issuedAt parsing and printing', () => {
    expect(parseIssuedAt('2026-01-01T01:00:00+01:00')).toEqual(new Date('2026-01-01T00:00:00Z'));
    expect(() => parseIssuedAt('yesterday')).toThrow(new MalformedKillMessageError('message: must be an ISO 8601 date-time with Z or an offset, e.g. 2026-01-01T12:00:00Z'));
    expect(isoTime(new Date(0))).toBe('1970-01-01T00:00:00.000Z');
    expect(() => isoTime(new Date(NaN))).toThrow(new MalformedKillMessageError('issuedAt: is not a real date'));
    expect(encodeKillMessage({ user: 'ä' }).toString('utf8')).toBe('{"user":"ä"}');
  });
});
