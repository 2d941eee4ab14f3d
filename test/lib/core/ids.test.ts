import { createHash } from 'node:crypto';
import { cryptoRandom, digest, digestsEqual, isWellFormedToken, newToken } from '../../../lib/core/ids';

/** Session ids and keys: what a cookie must look like to cost a lookup, and how digests compare. */
describe('tokens', () => {
  test('a new token is 256 random bits as 43 base64url characters, and is well-formed', () => {
    const t = newToken(cryptoRandom);
    expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(t, 'base64url')).toHaveLength(32);
    expect(isWellFormedToken(t)).toBe(true);
    expect(newToken(cryptoRandom)).not.toBe(t);
  });

  test('junk around a well-formed token makes it junk (both ends are anchored)', () => {
    const t = 'A'.repeat(43);
    expect(isWellFormedToken(t)).toBe(true);
    expect(isWellFormedToken(`x${t}`)).toBe(false);
    expect(isWellFormedToken(`${t}x`)).toBe(false);
    expect(isWellFormedToken(`;${t}`)).toBe(false);
    expect(isWellFormedToken(`${t}\n`)).toBe(false);
    expect(isWellFormedToken('A'.repeat(42))).toBe(false);
    expect(isWellFormedToken('A'.repeat(42) + '=')).toBe(false);
    expect(isWellFormedToken(43)).toBe(false);
    // A header sent twice arrives as an array; its text form would match the pattern.
    expect(isWellFormedToken([t])).toBe(false);
  });
});

describe('digests', () => {
  test('a digest is the SHA-256 hex of the secret (what the database holds instead of it)', () => {
    expect(digest('secret')).toBe(createHash('sha256').update('secret').digest('hex'));
  });

  test('only equal digests compare equal; different lengths and empty ones never do', () => {
    const a = digest('a');
    expect(digestsEqual(a, digest('a'))).toBe(true);
    expect(digestsEqual(a, digest('b'))).toBe(false);
    expect(digestsEqual(a, a.slice(0, 62))).toBe(false);
    expect(digestsEqual(a.slice(0, 62), a)).toBe(false);
    expect(digestsEqual('', '')).toBe(false);
    // Not hex: Buffer.from drops it all, which must not make two junk values "equal".
    expect(digestsEqual('zz', 'yy')).toBe(false);
  });
});
