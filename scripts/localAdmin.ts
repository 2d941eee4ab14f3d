import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Claims of a Google-style OIDC ID token; tests override them to forge bad tokens. */
export interface TokenClaims {
  iss?: string;
  aud?: string;
  sub?: string;
  email?: string;
  email_verified?: boolean;
  iat?: number;
  exp?: number;
  nbf?: number;
  [claim: string]: unknown;
}

export interface LocalAdmin {
  jwksFile: string;
  privateKeyFile: string;
  email: string;
  kid: string;
  privateKey: KeyObject;
  /** An RS256 ID token shaped like the ones Google signs, for `audience`. */
  mint(audience: string, claims?: TokenClaims, header?: Record<string, unknown>): string;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export function signJwt(header: Record<string, unknown>, claims: TokenClaims, key: KeyObject | null): string {
  const body = `${b64(header)}.${b64(claims)}`;
  const signature = key ? sign('RSA-SHA256', Buffer.from(body), key).toString('base64url') : '';
  return `${body}.${signature}`;
}

/**
 * A local stand-in for Google's signing keys: a fresh RSA key pair whose public half is written as
 * a JWKS file (SESSION_ADMIN_JWKS_FILE). The API verifies these tokens with exactly the code that
 * verifies Google's in production; only the key source differs.
 */
export function createLocalAdmin(dir: string, email = 'local-admin@session-local.iam.gserviceaccount.com'): LocalAdmin {
  mkdirSync(dir, { recursive: true });
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomBytes(8).toString('hex');
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }, null, 2));
  const privateKeyFile = join(dir, 'admin-key.pem');
  writeFileSync(privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return {
    jwksFile,
    privateKeyFile,
    email,
    kid,
    privateKey,
    mint(audience, claims = {}, header = {}) {
      const now = Math.floor(Date.now() / 1000);
      return signJwt(
        { alg: 'RS256', typ: 'JWT', kid, ...header },
        {
          iss: 'https://accounts.google.com',
          aud: audience,
          sub: '1234567890',
          email,
          email_verified: true,
          iat: now,
          exp: now + 3600,
          ...claims,
        },
        privateKey,
      );
    },
  };
}

/** Re-creates a LocalAdmin from the files a previous createLocalAdmin() wrote (the mint-token script). */
export function loadPrivateKey(pem: string): KeyObject {
  return createPrivateKey(pem);
}
