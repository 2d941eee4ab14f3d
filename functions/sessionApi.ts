import type { Request, Response } from '@google-cloud/functions-framework';
import { runtime } from '../lib/setup/runtime';
import { answerOptions, applyCors } from './http/cors';
import { HttpError, respondWithError } from './http/errors';
import { logRequest } from './http/requestLog';
import { type Context, match, runEndpoint } from './sessionApi/pipeline';
import { ROUTES } from './sessionApi/routes';

/**
 * The session API: a thin adapter that parses the request, calls the session library, and maps
 * its typed errors to HTTP. Reads cost one Datastore lookup; changes one lookup and one commit.
 * The routes are in sessionApi/routes/, the pipeline that runs them in sessionApi/pipeline.ts.
 */

/**
 * functions-framework runs each HTTP request inside a (deprecated) node:domain, only so that an
 * exception thrown from a callback of the request turns into a 500. While a domain is active, Node
 * tags every promise and callback created with it and enters and leaves it around each one; in the
 * request benchmark (bench/) that was about a fifth of this function's CPU per request. Every error
 * of this handler is a rejected promise it catches itself, so it leaves the domain: the one thing
 * that changes is that a throw from inside a library callback reaches the framework's
 * uncaughtException handler (a 500, then the instance is ended and replaced) instead of answering
 * this request with a 500 while the process runs on in an unknown state.
 */
function leaveFrameworkDomain(): void {
  (process as { domain?: { exit(): void } | null }).domain?.exit();
}

export async function sessionApi(req: Request, res: Response): Promise<void> {
  leaveFrameworkDomain();
  const startedAt = process.hrtime.bigint();
  const rt = runtime();
  const path = req.path.length > 1 ? req.path.replace(/\/+$/, '') : req.path;
  const found = match(ROUTES, path);
  let errorCode: string | undefined;
  let errorCause: string | undefined;
  res.setHeader('Cache-Control', 'no-store');
  applyCors(req, res, rt.config.allowedOrigins);
  try {
    if (!found) throw new HttpError(404, 'not_found', 'no such route');
    // Before any endpoint runs: a preflight never reads or writes a session.
    if (req.method === 'OPTIONS') return answerOptions(req, res, rt.config.allowedOrigins, Object.keys(found.route.methods));
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const endpoint = found.route.methods[method];
    if (!endpoint) {
      throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here`, { Allow: Object.keys(found.route.methods).join(', ') });
    }
    const ctx: Context = { req, res, rt, params: found.params };
    await runEndpoint(ctx, endpoint);
  } catch (err) {
    ({ code: errorCode, cause: errorCause } = respondWithError(res, err, 'sessionApi'));
  } finally {
    if (rt.config.logRequests === 'all' || res.statusCode >= 400) {
      const { projectId, behindGoogleFrontEnd } = rt.config;
      logRequest(req, res, { route: found?.route.template ?? 'unknown', startedAt, projectId, errorCode, errorCause, behindGoogleFrontEnd });
    }
  }
}
