/**
 * This backend's own identity towards the session API: `POST /session/login` is privileged and
 * takes a Google-signed ID token of an allowed service account (SESSION_ADMIN_PRINCIPALS) for the
 * API's audience (SESSION_ADMIN_AUDIENCE). The user's Firebase token is never sent there: it proves
 * who the user is to this backend, not that this backend may log people in.
 */
import { readFileSync } from 'node:fs';
import { GoogleAuth, type IdTokenClient } from 'google-auth-library';
import { readLauncherState } from '../../lib/setup/launcherState';
import { loadPrivateKey, signJwt } from '../../scripts/localAdmin';

/** A fresh (or still valid) ID token for the session API. */
export type IdTokenSource = () => Promise<string>;

/**
 * Production: an ID token of this service's account (Application Default Credentials: the metadata
 * server on Cloud Run and Cloud Functions, a service account key elsewhere) for `audience`, cached
 * by google-auth-library until shortly before it expires.
 *
 * @example
 * const idToken = googleIdTokens('https://sessions.example.com');
 * await idToken(); // 'eyJhbGciOiJSUzI1NiIs…'
 */
export function googleIdTokens(audience: string): IdTokenSource {
  let client: Promise<IdTokenClient> | undefined;
  return async () => {
    client ??= new GoogleAuth().getIdTokenClient(audience);
    const authorization = (await (await client).getRequestHeaders()).get('authorization') ?? '';
    return authorization.replace(/^Bearer /, '');
  };
}

/** Where `npm start` runs the API, and tokens signed with its local admin key. */
export interface LocalSessionApi {
  apiUrl: string;
  audience: string;
  idToken: IdTokenSource;
}

/**
 * Locally: the API, its audience and its admin key as the running `npm start` wrote them to
 * `<stateDir>/launcher.json` (what `npm run mint-token` does), tokens living five minutes.
 *
 * @example
 * const { apiUrl, idToken } = launcherIdentity('.local');
 */
export function launcherIdentity(stateDir: string): LocalSessionApi {
  const state = readLauncherState(stateDir);
  const key = loadPrivateKey(readFileSync(state.privateKeyFile, 'utf8'));
  const jwks = JSON.parse(readFileSync(state.jwksFile, 'utf8')) as { keys: Array<{ kid: string }> };
  const kid = jwks.keys[0]?.kid;
  return {
    apiUrl: state.apiUrl,
    audience: state.audience,
    idToken: async () => {
      const now = Math.floor(Date.now() / 1000);
      const claims = { iss: 'https://accounts.google.com', aud: state.audience, sub: 'firebase-login-example' };
      return signJwt(
        { alg: 'RS256', typ: 'JWT', kid },
        { ...claims, email: state.adminEmail, email_verified: true, iat: now, exp: now + 300 },
        key,
      );
    },
  };
}
