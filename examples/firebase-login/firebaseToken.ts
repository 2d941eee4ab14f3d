/**
 * Verifying a Firebase Auth / Identity Platform ID token with google-auth-library, by the rules
 * Firebase documents for third-party JWT libraries: RS256, signed by one of the keys Google
 * publishes for `securetoken@system.gserviceaccount.com`, issuer and audience of this project,
 * issued and signed in in the past, not expired, a non-empty `sub` (the uid). What comes out is the
 * user id a backend may pass to `POST /session/login`; nothing the page says besides the token is
 * trusted.
 */
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { OAuth2Client } from 'google-auth-library';

/** Google's x509 certificates for Firebase ID tokens, keyed by `kid`; the answer's Cache-Control says how long they hold. */
export const SECURETOKEN_CERTS_URL = 'https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com';

/** Firebase ID tokens live one hour. */
const TOKEN_LIFETIME_SECONDS = 3600;
/** Firebase caps a uid at 128 characters. */
const MAX_UID_LENGTH = 128;

/** PEM (an x509 certificate or a public key) by key id. */
export type Certificates = Record<string, string>;
/** Where the verification keys come from: Google's endpoint in production, a local key set in tests. */
export type CertificateSource = () => Promise<Certificates>;

/** The token is missing, malformed, forged, expired or not for this project: 401. The message is safe to show. */
export class InvalidTokenError extends Error {}
/** The token is genuine but this user may not sign in here (an unverified email): 403. */
export class ForbiddenTokenError extends Error {}
/** The verification keys could not be fetched: nobody can be verified right now (503). */
export class CertificatesUnavailableError extends Error {}

/** The claims of a Firebase ID token this example looks at (it carries more). */
export interface FirebaseClaims {
  iss: string;
  aud: string;
  sub: string;
  iat: number;
  exp: number;
  auth_time: number;
  email?: string;
  email_verified?: boolean;
  firebase?: { sign_in_provider?: string; tenant?: string; [claim: string]: unknown };
  [claim: string]: unknown;
}

/** Who signed in: `uid` is the token's `sub`, the id Firebase gave the user. */
export interface VerifiedUser {
  uid: string;
  claims: FirebaseClaims;
}

export interface FirebaseVerifierOptions {
  /** The Firebase / Google Cloud project id: `aud` must be it, `iss` https://securetoken.google.com/<it>. */
  projectId: string;
  /**
   * Identity Platform multi-tenancy: the tenant whose users may sign in (`firebase.tenant`). Unset,
   * tokens of any tenant are refused: a uid is unique only within its tenant.
   */
  tenantId?: string;
  /** Refuse (403) a token whose `email_verified` is not true. */
  requireVerifiedEmail?: boolean;
  /** Refuse a sign-in older than this (the `auth_time` claim): a token refreshed for days still names the old sign-in. */
  maxAuthAgeSeconds?: number;
  /** How far apart this server's clock and Google's may be (default 10 s). */
  clockToleranceSeconds?: number;
  /** Default: googleCertificates(), Google's published certificates, cached as their Cache-Control says. */
  certificates?: CertificateSource;
}

/**
 * Google's certificates for Firebase ID tokens, fetched with google-auth-library (which caches them
 * for the `max-age` of the answer, so one fetch serves many logins). `url` is for tests.
 *
 * @example
 * const certificates = googleCertificates();
 * await certificates(); // { 'a1b2…': '-----BEGIN CERTIFICATE-----\n…' }
 */
export function googleCertificates(url: string = SECURETOKEN_CERTS_URL): CertificateSource {
  // Node's own fetch: gaxios would otherwise import node-fetch with a dynamic import(), which jest's
  // module system (where this is tested) does not support.
  const client = new OAuth2Client({
    endpoints: { oauth2FederatedSignonPemCertsUrl: url },
    transporterOptions: { fetchImplementation: fetch },
  });
  return async () => {
    try {
      return (await client.getFederatedSignonCertsAsync()).certs as Certificates;
    } catch {
      throw new CertificatesUnavailableError('the verification certificates could not be fetched');
    }
  };
}

/**
 * A local key set instead of Google's (tests, trying the example without a Firebase project): a
 * JSON file that is either the same `{ kid: PEM }` map Google's endpoint answers or a JWKS
 * (`{ keys: [{ kid, n, e, … }] }`). Read once.
 *
 * @example
 * const certificates = certificatesFromFile('.local/firebase-login/certs.json');
 */
export function certificatesFromFile(path: string): CertificateSource {
  let certs: Certificates | undefined;
  return async () => {
    if (!certs) {
      const json = JSON.parse(readFileSync(path, 'utf8')) as Certificates | { keys: Array<JsonWebKey & { kid?: string }> };
      if (Array.isArray(json.keys)) {
        certs = {};
        for (const jwk of json.keys as Array<JsonWebKey & { kid?: string }>) {
          if (jwk.kid) certs[jwk.kid] = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
        }
      } else {
        certs = json as Certificates;
      }
    }
    return certs;
  };
}

function decodePart(part: string | undefined): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // falls through
  }
  throw new InvalidTokenError('the token is malformed');
}

const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

/**
 * Verifies Firebase ID tokens of one project. Keep one per configuration: it holds the certificate
 * cache.
 *
 * @example
 * const verifier = new FirebaseTokenVerifier({ projectId: 'my-project' });
 * const { uid } = await verifier.verify(idToken); // throws InvalidTokenError, ForbiddenTokenError, CertificatesUnavailableError
 */
export class FirebaseTokenVerifier {
  readonly #options: FirebaseVerifierOptions;
  readonly #issuer: string;
  readonly #certificates: CertificateSource;
  readonly #client = new OAuth2Client();

  constructor(options: FirebaseVerifierOptions) {
    if (!options.projectId) throw new Error('a Firebase project id is required');
    this.#options = options;
    this.#issuer = `https://securetoken.google.com/${options.projectId}`;
    this.#certificates = options.certificates ?? googleCertificates();
  }

  async verify(token: string): Promise<VerifiedUser> {
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) throw new InvalidTokenError('the token is malformed');
    const [headerPart, payloadPart] = token.split('.');
    const header = decodePart(headerPart);
    const claims = decodePart(payloadPart);

    // The cheap checks first, on the still unverified token: a refusal needs no certificate.
    // Acceptance needs all of them and the signature below (which re-checks iss, aud, iat and exp).
    // Firebase signs with RS256 only; `none` or an HMAC "signed" with a public key never pass.
    if (header.alg !== 'RS256') throw new InvalidTokenError('the token is not signed with RS256');
    if (typeof header.kid !== 'string' || !header.kid) throw new InvalidTokenError('the token names no signing key');
    // Another project's token is signed by the same Google keys: only iss and aud tell them apart.
    if (claims.iss !== this.#issuer) throw new InvalidTokenError('the token was not issued for this project (iss)');
    if (claims.aud !== this.#options.projectId) throw new InvalidTokenError('the token is not meant for this project (aud)');
    // The uid becomes the session's user id: a missing or empty one would log in "nobody" or everybody.
    if (typeof claims.sub !== 'string' || claims.sub.length === 0 || claims.sub.length > MAX_UID_LENGTH)
      throw new InvalidTokenError('the token names no user (sub)');
    const { iat, exp, auth_time: authTime } = claims;
    if (!isNumber(iat) || !isNumber(exp) || !isNumber(authTime)) throw new InvalidTokenError('the token lacks iat, exp or auth_time');
    const now = Date.now() / 1000;
    const tolerance = this.#options.clockToleranceSeconds ?? 10;
    // A stolen token is useful for an hour at most; the page asks Firebase for a fresh one (getIdToken()).
    if (exp <= now - tolerance) throw new InvalidTokenError('the token has expired');
    if (iat > now + tolerance) throw new InvalidTokenError('the token was issued in the future');
    if (exp <= iat || exp - iat > TOKEN_LIFETIME_SECONDS + tolerance) throw new InvalidTokenError('the token has an implausible lifetime');
    if (authTime > now + tolerance || authTime > iat + tolerance) throw new InvalidTokenError('the sign-in time is in the future');
    if (this.#options.maxAuthAgeSeconds !== undefined && now - authTime > this.#options.maxAuthAgeSeconds)
      throw new InvalidTokenError('the sign-in is too old: sign in again');
    const firebase = claims.firebase as FirebaseClaims['firebase'];
    const tenant = firebase?.tenant;
    if (tenant !== this.#options.tenantId)
      throw new InvalidTokenError(tenant === undefined ? 'the token is of no tenant' : 'the token is of another tenant');

    const certs = await this.#certificates();
    try {
      // Signature with the key the header names (a kid Google does not publish fails), iss, aud, iat and exp again.
      await this.#client.verifySignedJwtWithCertsAsync(token, certs, this.#options.projectId, [this.#issuer], TOKEN_LIFETIME_SECONDS + 300);
    } catch {
      // The library's messages contain the token: never pass them on or log them.
      throw new InvalidTokenError('the token signature is not valid');
    }
    if (this.#options.requireVerifiedEmail && claims.email_verified !== true)
      throw new ForbiddenTokenError('the email address is not verified');
    return { uid: claims.sub, claims: claims as FirebaseClaims };
  }
}
