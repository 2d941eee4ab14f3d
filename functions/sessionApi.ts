import type { Request, Response } from '@google-cloud/functions-framework';
import { runtime } from '../lib/setup/runtime';
import { answerOptions, applyAnswerHeaders } from './http/cors';
import { HttpError, respondWithError } from './http/errors';
import { logRequest } from './http/requestLog';
import { type Context, match, runEndpoint } from './sessionApi/pipeline';
import { ROUTES } from './sessionApi/routes';
import { viurRoutes } from './sessionApi/routes/viur';

/**
 * The session API: a thin adapter that parses the request, calls the session library, and maps
 * its typed errors to HTTP. Reads cost one Datastore lookup; changes one lookup and one commit.
 * The routes are in sessionApi/routes/, the pipeline that runs them in sessionApi/pipeline.ts.
 */

/**
 * Leaves the node:domain functions-framework runs each request in: it cost about a fifth of this
 * function's CPU per request, and every error here is a promise rejection caught below anyway
 * (docs/design/framework-domain.md).
 */
function leaveFrameworkDomain(): void {
  (process as { domain?: { exit(): void } | null }).domain?.exit();
}

/**
 * The HTTP entry point of the session API (`--target=sessionApi`): matches the route, answers
 * preflights, runs the endpoint through the pipeline, and turns every failure into the JSON error
 * body (docs/api.md#errors). Every answer carries `Cache-Control: no-store` and the CORS headers;
 * failed requests (or all, with SESSION_LOG_REQUESTS=all) get a log line. Registered by
 * functions/index.ts; call it directly to serve the API from your own functions-framework setup.
 *
 * @example
 * import * as functions from '@google-cloud/functions-framework';
 * functions.http('sessionApi', sessionApi);
 */
export async function sessionApi(req: Request, res: Response): Promise<void> {
  leaveFrameworkDomain();
  const startedAt = process.hrtime.bigint();
  const rt = runtime();
  const path = req.path.length > 1 ? req.path.replace(/\/+$/, '') : req.path;
  // The format is fixed by the configuration parsed at start-up: one route table or the other.
  const found = match(rt.config.format === 'viur' ? viurRoutes : ROUTES, path);
  let errorCode: string | undefined;
  let errorCause: string | undefined;
  applyAnswerHeaders(req, res, rt.config.allowedOrigins);
  try {
    if (!found) throw new HttpError(404, 'not_found', 'no such route');
    // Before any endpoint runs: a preflight never reads or writes a session.
    if (req.method === 'OPTIONS') return answerOptions(req, res, rt.config.allowedOrigins, Object.keys(found.route.methods));
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const endpoint = found.route.methods[method];
    if (!endpoint) {
      throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here`, {
        Allow: Object.keys(found.route.methods).join(', '),
      });
    }
    const ctx: Context = { req, res, rt, params: found.params };
    await runEndpoint(ctx, endpoint);
  } catch (err) {
    ({ code: errorCode, cause: errorCause } = respondWithError(res, err, 'sessionApi'));
  } finally {
    if (rt.config.logRequests === 'all' || res.statusCode >= 400) {
      const { projectId, behindGoogleFrontEnd } = rt.config;
      logRequest(req, res, {
        route: found?.route.template ?? 'unknown',
        startedAt,
        projectId,
        errorCode,
        errorCause,
        behindGoogleFrontEnd,
      });
    }
  }
}
