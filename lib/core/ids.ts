import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Injected source of randomness so tests can make ids predictable; production uses crypto. */
export interface RandomSource {
  bytes(count: number): Buffer;
}

/**
 * The production RandomSource: Node's crypto.randomBytes.
 *
 * @example
 * const rt = createRuntime(config, { random: cryptoRandom });
 */
export const cryptoRandom: RandomSource = { bytes: (count) => randomBytes(count) };

/** 32 bytes = 256 bits, as base64url: 43 characters. */
const TOKEN_BYTES = 32;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/**
 * A new secret of 256 bits as 43 base64url characters: what session ids, static keys and one-time
 * security keys are made of.
 *
 * @example
 * newToken(cryptoRandom); // 'q3Hk…' (43 characters)
 */
export function newToken(random: RandomSource): string {
  return random.bytes(TOKEN_BYTES).toString('base64url');
}

/**
 * Cheap shape check done before any store call, so junk cookies never cost a lookup.
 *
 * @example
 * isWellFormedToken(newToken(cryptoRandom)); // true
 * isWellFormedToken('deleted'); // false
 */
export function isWellFormedToken(value: unknown): value is string {
  return typeof value === 'string' && TOKEN_PATTERN.test(value);
}

/**
 * What is stored in place of a secret: a reader of the database cannot replay it. The SHA-256 hex
 * digest; a session's storage key is the digest of its id.
 *
 * @example
 * digest('secret'); // '2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b'
 * await store.get(digest(sessionId));
 */
export function digest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/**
 * Constant-time comparison of two hex digests of equal length; false for empty or unequal lengths.
 *
 * @example
 * digestsEqual(stored.staticKeyDigest, digest(sentKey)); // true when the key matches
 */
export function digestsEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'hex');
  const bb = Buffer.from(b, 'hex');
  return ab.length === bb.length && ab.length > 0 && timingSafeEqual(ab, bb);
}
