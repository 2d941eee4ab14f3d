import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Injected source of randomness so tests can make ids predictable; production uses crypto. */
export interface RandomSource {
  bytes(count: number): Buffer;
}

export const cryptoRandom: RandomSource = { bytes: (count) => randomBytes(count) };

/** 32 bytes = 256 bits, as base64url: 43 characters. */
const TOKEN_BYTES = 32;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function newToken(random: RandomSource): string {
  return random.bytes(TOKEN_BYTES).toString('base64url');
}

/** Cheap shape check done before any store call, so junk cookies never cost a lookup. */
export function isWellFormedToken(value: unknown): value is string {
  return typeof value === 'string' && TOKEN_PATTERN.test(value);
}

/** What is stored in place of a secret: a reader of the database cannot replay it. */
export function digest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Constant-time comparison of two hex digests of equal length. */
export function digestsEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, 'hex');
  const bb = Buffer.from(b, 'hex');
  return ab.length === bb.length && ab.length > 0 && timingSafeEqual(ab, bb);
}
