/**
 * `npm run mint-token [-- AUDIENCE]`: a fresh privileged ID token for the running `npm start`,
 * signed with its local admin key and minted for its audience (both read from launcher.json in
 * SESSION_LOCAL_STATE_DIR, default .local), for the local API only.
 */
import { readFileSync } from 'node:fs';
import { NoLauncherError, readLauncherState, stateDirFrom } from '../lib/setup/launcherState';
import { loadPrivateKey, signJwt } from './localAdmin';

try {
  const state = readLauncherState(stateDirFrom(process.env));
  const audience = process.argv[2] ?? state.audience;
  const jwks = JSON.parse(readFileSync(state.jwksFile, 'utf8')) as { keys: Array<{ kid: string }> };
  const key = loadPrivateKey(readFileSync(state.privateKeyFile, 'utf8'));
  const now = Math.floor(Date.now() / 1000);
  console.log(
    signJwt(
      { alg: 'RS256', typ: 'JWT', kid: jwks.keys[0]!.kid },
      {
        iss: 'https://accounts.google.com',
        aud: audience,
        sub: '1234567890',
        email: state.adminEmail,
        email_verified: true,
        iat: now,
        exp: now + 3600,
      },
      key,
    ),
  );
} catch (err) {
  console.error(
    `mint-token: ${err instanceof NoLauncherError ? err.message : `cannot read the local admin key: ${err instanceof Error ? err.message : String(err)} (run npm start again)`}`,
  );
  process.exit(1);
}
