/**
 * Trying the example without a Firebase project: a local RSA key standing in for Google's
 * securetoken keys, its public half in the `{ kid: PEM }` shape Google's endpoint answers
 * (certs.json, trusted with certificatesFromFile), and Firebase-shaped ID tokens signed with it.
 * Never point a deployed backend at this key set.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signJwt } from '../../scripts/localAdmin';

/** The project id the local key set signs for when FIREBASE_PROJECT_ID is unset ("demo-" as the Firebase emulators use). */
export const LOCAL_PROJECT_ID = 'demo-session-local';

export interface LocalFirebase {
  /** The public key set: FIREBASE_CERTS_FILE for the backend. */
  certsFile: string;
  /** A Firebase-shaped ID token for `uid`, signed like Google signs them; `claims` override. */
  mint(projectId: string, uid: string, claims?: Record<string, unknown>): string;
}

/**
 * The key set in `dir`, created on first use (key.pem, mode 0600, and certs.json).
 *
 * @example
 * const local = localFirebase('.local/firebase-login');
 * local.mint('demo-session-local', 'alice'); // 'eyJhbGciOiJSUzI1NiIs…'
 */
export function localFirebase(dir: string): LocalFirebase {
  const keyFile = join(dir, 'key.pem');
  const certsFile = join(dir, 'certs.json');
  if (!existsSync(keyFile) || !existsSync(certsFile)) {
    mkdirSync(dir, { recursive: true });
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const kid = randomBytes(10).toString('hex');
    writeFileSync(certsFile, `${JSON.stringify({ [kid]: publicKey.export({ type: 'spki', format: 'pem' }) }, null, 2)}\n`);
  }
  const privateKey = createPrivateKey(readFileSync(keyFile, 'utf8'));
  const certs = JSON.parse(readFileSync(certsFile, 'utf8')) as Record<string, string>;
  const kid = Object.keys(certs)[0];
  if (!kid || !createPublicKey(certs[kid]).equals(createPublicKey(privateKey))) throw new Error(`${certsFile} does not match ${keyFile}`);
  return {
    certsFile,
    mint(projectId, uid, claims = {}) {
      const now = Math.floor(Date.now() / 1000);
      return signJwt(
        { alg: 'RS256', typ: 'JWT', kid },
        {
          iss: `https://securetoken.google.com/${projectId}`,
          aud: projectId,
          sub: uid,
          user_id: uid,
          auth_time: now,
          iat: now,
          exp: now + 3600,
          firebase: { identities: {}, sign_in_provider: 'custom' },
          ...claims,
        },
        privateKey,
      );
    },
  };
}
