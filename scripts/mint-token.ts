/**
 * `npm run mint-token [-- AUDIENCE]`: a fresh privileged ID token signed with the local admin key
 * that `npm start` created (in .local/admin), for the local API only.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPrivateKey, signJwt } from './localAdmin';

const dir = process.env.SESSION_LOCAL_STATE_DIR ?? '.local';
const audience = process.argv[2] ?? 'http://localhost:8080';
try {
  const jwks = JSON.parse(readFileSync(join(dir, 'admin', 'jwks.json'), 'utf8')) as { keys: Array<{ kid: string }> };
  const key = loadPrivateKey(readFileSync(join(dir, 'admin', 'admin-key.pem'), 'utf8'));
  const now = Math.floor(Date.now() / 1000);
  const email = process.env.SESSION_LOCAL_ADMIN_EMAIL ?? 'local-admin@session-local.iam.gserviceaccount.com';
  console.log(
    signJwt(
      { alg: 'RS256', typ: 'JWT', kid: jwks.keys[0]!.kid },
      { iss: 'https://accounts.google.com', aud: audience, sub: '1234567890', email, email_verified: true, iat: now, exp: now + 3600 },
      key,
    ),
  );
} catch {
  console.error(`no local admin key in ${dir}/admin: run npm start first`);
  process.exit(1);
}
