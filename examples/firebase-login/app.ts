/**
 * The backend route a page calls after signing in with Firebase: `POST /auth/login` with the user's
 * Firebase ID token (`Authorization: Bearer <token>`, or `{"idToken": "<token>"}`). It verifies the
 * token, then asks the session API to bind the uid to the browser's session (`POST /session/login`
 * with this backend's own identity and the browser's Cookie header) and relays the API's answer,
 * its new cookie included. Serve it on the same origin as the session API (a Hosting rewrite for
 * `/auth/**` next to `/session/**`): the cookie it relays belongs to that origin.
 */
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { IdTokenSource } from './backendIdentity';
import { CertificatesUnavailableError, ForbiddenTokenError, InvalidTokenError, type VerifiedUser } from './firebaseToken';

export interface LoginAppOptions {
  /** FirebaseTokenVerifier#verify, or an adapter to another verifier (the Admin SDK's: see README). */
  verifyIdToken: (token: string) => Promise<VerifiedUser>;
  /** The session API's origin, e.g. https://sessions.example.com. */
  sessionApiUrl: string;
  /** This backend's ID token for the API (googleIdTokens(audience) in production). */
  backendIdToken: IdTokenSource;
  /** Told why a login was refused or failed (never the token). Default: nothing. */
  log?: (event: { status: number; reason: string }) => void;
}

function fail(res: Response, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  res
    .status(status)
    .set({ 'Cache-Control': 'no-store', ...headers })
    .json({ error: { code, message } });
}

/** The token from `Authorization: Bearer …`, else from a JSON body's `idToken`. */
function tokenOf(req: Request): string | undefined {
  const bearer = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '');
  if (bearer) return bearer[1];
  const body = req.body as { idToken?: unknown } | undefined;
  return typeof body?.idToken === 'string' && body.idToken ? body.idToken : undefined;
}

/**
 * @example
 * const app = createLoginApp({
 *   verifyIdToken: (token) => new FirebaseTokenVerifier({ projectId: 'my-project' }).verify(token),
 *   sessionApiUrl: 'https://sessions.example.com',
 *   backendIdToken: googleIdTokens('https://sessions.example.com'),
 * });
 * app.listen(8090);
 */
export function createLoginApp(options: LoginAppOptions): Express {
  const log = options.log ?? (() => undefined);
  const loginUrl = new URL('/session/login', options.sessionApiUrl).toString();
  const app = express();
  app.disable('x-powered-by');

  // Only JSON bodies: a cross-site <form> cannot send one, and a page of another site can send
  // neither JSON nor an Authorization header without a CORS preflight, which this app never allows.
  app.post('/auth/login', express.json({ limit: '16kb' }), async (req: Request, res: Response) => {
    // Login CSRF: another site must not log this browser into an account of its choosing.
    if (req.get('sec-fetch-site') === 'cross-site') {
      log({ status: 403, reason: 'cross-site request' });
      return fail(res, 403, 'cross_site', 'a login must come from this site');
    }
    const token = tokenOf(req);
    if (!token) {
      log({ status: 401, reason: 'no token' });
      return fail(res, 401, 'unauthenticated', 'a Firebase ID token is required', { 'WWW-Authenticate': 'Bearer' });
    }
    let user: VerifiedUser;
    try {
      user = await options.verifyIdToken(token);
    } catch (err) {
      const reason = err instanceof Error ? err.message : 'refused';
      if (err instanceof InvalidTokenError) {
        log({ status: 401, reason });
        return fail(res, 401, 'invalid_token', reason, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
      }
      if (err instanceof ForbiddenTokenError) {
        log({ status: 403, reason });
        return fail(res, 403, 'forbidden', reason);
      }
      log({ status: 503, reason: err instanceof CertificatesUnavailableError ? reason : 'the token could not be verified' });
      return fail(res, 503, 'unavailable', 'the sign-in cannot be verified right now', { 'Retry-After': '5' });
    }

    // Only now, with a verified uid, is the session API called, with this backend's identity.
    let answer: globalThis.Response;
    try {
      const headers: Record<string, string> = {
        authorization: `Bearer ${await options.backendIdToken()}`,
        'content-type': 'application/json',
      };
      const cookie = req.get('cookie');
      if (cookie) headers.cookie = cookie; // the session to log in (a guest session, or none yet)
      const userAgent = req.get('user-agent');
      if (userAgent) headers['user-agent'] = userAgent; // the device list shows the browser, not this backend
      answer = await fetch(loginUrl, {
        method: 'POST',
        headers,
        body: JSON.stringify({ user: user.uid }),
        redirect: 'manual',
        signal: AbortSignal.timeout(10_000),
      });
    } catch {
      log({ status: 502, reason: 'the session API is not reachable' });
      return fail(res, 502, 'bad_gateway', 'the session API is not reachable');
    }
    const body = await answer.text();
    if (answer.status === 401 || answer.status === 403) {
      // The API refused this backend (SESSION_ADMIN_PRINCIPALS, SESSION_ADMIN_AUDIENCE): a set-up error, not the user's.
      log({ status: 502, reason: `the session API refused this backend's identity (${answer.status})` });
      return fail(res, 502, 'bad_gateway', "the session API refused this backend's identity");
    }
    res.status(answer.status).set('Cache-Control', 'no-store');
    for (const setCookie of answer.headers.getSetCookie()) res.append('Set-Cookie', setCookie);
    const staticKey = answer.headers.get('sec-x-viur-staticskey');
    if (staticKey) res.set('Sec-X-ViUR-StaticSKey', staticKey);
    res.type(answer.headers.get('content-type') ?? 'application/json').send(body);
  });
  // A body express.json() refused (not JSON, too large): the same error shape as every other answer.
  app.use((err: { status?: number }, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const status = err.status === 413 ? 413 : 400;
    fail(
      res,
      status,
      status === 413 ? 'too_large' : 'bad_request',
      status === 413 ? 'the body is too large' : 'the body is not valid JSON',
    );
  });
  return app;
}
