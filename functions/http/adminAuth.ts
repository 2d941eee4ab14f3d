import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { OAuth2Client } from 'google-auth-library';
import type { Config } from '../../lib/setup/config';
import { HttpError } from './errors';

/** Google signs ID tokens with either issuer spelling. */
const GOOGLE_ISSUERS = ['https://accounts.google.com', 'accounts.google.com'];

type Certificates = Record<string, string>;

/** Who a verified privileged caller is: the token's verified email, lower-cased. */
export interface AdminIdentity {
  email: string;
}

/**
 * Verifies `Authorization: Bearer <Google-signed OIDC ID token>` for privileged routes with
 * google-auth-library: one verification path with two key sources, Google's certificates in
 * production or a JWKS file for local use and tests. Error texts of the library contain the
 * token, so none of them is passed on or logged. Keep one verifier per configuration: it caches
 * the OAuth client and the certificates.
 *
 * @example
 * const verifier = new AdminVerifier(config.admin);
 * const { email } = await verifier.verify(req.get('authorization')); // throws HttpError 401/403
 */
export class AdminVerifier {
  #client: OAuth2Client | undefined;
  #fileCerts: Certificates | undefined;

  readonly #config: Config['admin'];

  /**
   * A verifier for this admin configuration (audience, allowed principals, optional JWKS file).
   *
   * @example
   * new AdminVerifier({
   *   audience: 'https://sessions.example.com',
   *   principals: ['backend@my-project.iam.gserviceaccount.com'],
   *   jwksFile: undefined,
   * });
   */
  constructor(config: Config['admin']) {
    this.#config = config;
  }

  /**
   * The audience is always the configured one, never one derived from the request: the caller
   * chooses its Host header, so an audience taken from it would accept an allowed principal's token
   * minted for any other service. Without a configured
   * audience there are no principals either (config.ts refuses that combination at start-up).
   * Resolves with the caller's identity; throws HttpError 401 `unauthenticated` (no, malformed or
   * invalid token) or 403 `forbidden` (no verified email, or not an allowed principal).
   *
   * @example
   * await verifier.verify('Bearer eyJhbGciOiJSUzI1NiIs…'); // { email: 'backend@my-project.iam.gserviceaccount.com' }
   */
  async verify(authorization: string | undefined): Promise<AdminIdentity> {
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)$/.exec(authorization ?? '');
    if (!match) throw new HttpError(401, 'unauthenticated', 'a Bearer ID token is required', { 'WWW-Authenticate': 'Bearer' });
    const audience = this.#config.audience;
    if (audience === undefined) throw new HttpError(403, 'forbidden', 'privileged access is not configured');
    const client = this.#oauthClient();
    let payload: Record<string, unknown> | undefined;
    try {
      const certs = await this.#certificates(client);
      const ticket = await client.verifySignedJwtWithCertsAsync(match[1]!, certs, audience, GOOGLE_ISSUERS);
      payload = ticket.getPayload() as Record<string, unknown> | undefined;
    } catch {
      throw new HttpError(401, 'unauthenticated', 'the ID token is not valid', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
    }
    const nowSeconds = Date.now() / 1000;
    if (!payload || (typeof payload.nbf === 'number' && payload.nbf > nowSeconds + 300)) {
      throw new HttpError(401, 'unauthenticated', 'the ID token is not valid yet', { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
    }
    const email = typeof payload.email === 'string' ? payload.email.toLowerCase() : '';
    if (!email || payload.email_verified !== true) throw new HttpError(403, 'forbidden', 'the token carries no verified email');
    if (!this.#config.principals.some((p) => p.toLowerCase() === email))
      throw new HttpError(403, 'forbidden', 'this caller is not allowed');
    return { email };
  }

  #oauthClient(): OAuth2Client {
    if (!this.#client) {
      // Loaded on the first privileged request only: it is not needed for anything else.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { OAuth2Client: Client } = require('google-auth-library') as typeof import('google-auth-library');
      this.#client = new Client();
    }
    return this.#client;
  }

  async #certificates(client: OAuth2Client): Promise<Certificates> {
    if (!this.#config.jwksFile) return (await client.getFederatedSignonCertsAsync()).certs as Certificates;
    this.#fileCerts ??= readJwks(this.#config.jwksFile);
    return this.#fileCerts;
  }
}

/**
 * A JWKS file as the PEM map the library verifies against, keyed by `kid` (keys without one are
 * skipped): the local and test key source (SESSION_ADMIN_JWKS_FILE).
 *
 * @example
 * readJwks('.local/jwks.json'); // { 'local-1': '-----BEGIN PUBLIC KEY-----\n…' }
 */
export function readJwks(path: string): Certificates {
  const jwks = JSON.parse(readFileSync(path, 'utf8')) as { keys?: Array<JsonWebKey & { kid?: string }> };
  const certs: Certificates = {};
  for (const jwk of jwks.keys ?? []) {
    if (!jwk.kid) continue;
    certs[jwk.kid] = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
  }
  return certs;
}
