/**
 * Properties of the kill message format, each checked against an oracle written independently of
 * the schemas (not just "nothing thrown"): what a publisher encodes comes back as the same target,
 * and a message is accepted exactly when docs/kill-messages.md#what-is-malformed says so.
 */
import fc from 'fast-check';
import {
  encodeKillMessage,
  killMessageData,
  MalformedKillMessageError,
  parseKillMessageData,
  validateKillMessage,
  type KillMessage,
} from '../../../lib/jobs/killMessage';
import { MAX_CONTINUATIONS } from '../../../lib/core/limits';

// Built outside any test, as in killMessage.test.ts: the mutation run then credits every test here.
validateKillMessage({ user: 'warm-up' });

const RUNS = 300;

/** The oracle for a user id: 1 to 500 bytes of UTF-8, no lone surrogate (encodeURIComponent throws on one). */
function validUser(u: string): boolean {
  let bytes: number;
  try {
    bytes = unescape(encodeURIComponent(u)).length;
  } catch {
    return false;
  }
  return bytes >= 1 && bytes <= 500;
}

function outcome(value: unknown): KillMessage | 'malformed' {
  try {
    return parseKillMessageData(JSON.stringify(value));
  } catch (err) {
    if (err instanceof MalformedKillMessageError) return 'malformed';
    throw err;
  }
}

// Any string a client may send: whole code points, lone surrogates, up to well over the 500-byte bound.
const anyString = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: fc.constantFrom('a', 'ü', '€', '😀', '\ud800', '\udc00'), minLength: 120, maxLength: 260 }),
);
const userId = anyString.filter(validUser);
// Instants whose ISO form has a four-digit year (the form isoTime writes).
const instant = fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true });

test('what a publisher encodes, the consumer reads back as the same target and time', () => {
  fc.assert(
    fc.property(fc.oneof(fc.constant(null), userId), fc.option(instant, { nil: undefined }), (user, at) => {
      expect(parseKillMessageData(encodeKillMessage(killMessageData({ user }, at)))).toEqual({
        kind: 'kill',
        user,
        issuedAt: at,
        continuation: 0,
      });
    }),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.array(userId, { minLength: 1, maxLength: 12 }), fc.option(instant, { nil: undefined }), (users, at) => {
      // Duplicates are dropped, first occurrence kept, order otherwise unchanged.
      const unique = users.filter((u, i) => users.indexOf(u) === i);
      expect(parseKillMessageData(encodeKillMessage(killMessageData({ users }, at)))).toEqual({
        kind: 'fanOut',
        users: unique,
        issuedAt: at,
      });
    }),
    { numRuns: RUNS },
  );
});

test('a user id is accepted exactly when it is 1 to 500 bytes of well-formed UTF-8, alone or in a list', () => {
  fc.assert(
    fc.property(anyString, (u) => {
      const single = outcome({ user: u });
      expect(single === 'malformed' ? false : single).toEqual(
        validUser(u) ? { kind: 'kill', user: u, issuedAt: undefined, continuation: 0 } : false,
      );
      const listed = outcome({ users: ['ok', u] });
      expect(listed !== 'malformed').toBe(validUser(u));
    }),
    { numRuns: RUNS },
  );
});

test('a continuation is accepted exactly when it is an integer from 1 to MAX_CONTINUATIONS and the kill carries issuedAt', () => {
  const n = fc.oneof(
    fc.integer({ min: -3, max: MAX_CONTINUATIONS + 3 }),
    fc.constantFrom(0, 1, MAX_CONTINUATIONS, MAX_CONTINUATIONS + 1),
    fc.double(),
    fc.integer(),
  );
  fc.assert(
    fc.property(n, fc.boolean(), instant, (continuation, withTime, at) => {
      const valid = Number.isInteger(continuation) && continuation >= 1 && continuation <= MAX_CONTINUATIONS;
      const kill = outcome({ user: 'u', continuation, ...(withTime ? { issuedAt: at.toISOString() } : {}) });
      expect(kill).toEqual(valid && withTime ? { kind: 'kill', user: 'u', issuedAt: at, continuation } : 'malformed');
      // The cleanup's continuation needs no time (its cut-off is computed when it runs).
      expect(outcome({ cleanup: { continuation } })).toEqual(valid ? { kind: 'cleanup', continuation } : 'malformed');
    }),
    { numRuns: RUNS },
  );
});

test('any field beside the known ones makes a message malformed (a typo never widens or silences a kill)', () => {
  const known: Record<string, unknown> = { user: 'u', users: ['u'], cleanup: {} };
  const extra = fc.string({ maxLength: 12 }).filter((k) => !['user', 'users', 'issuedAt', 'continuation', 'cleanup'].includes(k));
  fc.assert(
    fc.property(fc.constantFrom('user', 'users', 'cleanup'), extra, fc.jsonValue({ maxDepth: 1 }), (kind, key, value) => {
      expect(outcome({ [kind]: known[kind], [key]: value })).toBe('malformed');
      if (kind === 'cleanup') expect(outcome({ cleanup: { [key]: value } })).toBe('malformed');
    }),
    { numRuns: RUNS },
  );
});
