import type { Request, Response } from '@google-cloud/functions-framework';
import { log } from '../../lib/setup/log';
import { clientAddress } from './clientAddress';

/**
 * One structured line per request in the shape Cloud Logging understands. It names the route
 * template, not the raw URL, and no header values beyond the user agent: cookies, keys and tokens
 * never reach the log.
 */
export interface RequestLogEntry {
  /** The route template (never the raw URL: it may carry a user id or a data key). */
  route: string;
  /** process.hrtime.bigint() when the request arrived. */
  startedAt: bigint;
  /** For the trace link. */
  projectId: string;
  errorCode?: string | undefined;
  /** Why a 503 happened (failureCause). */
  errorCause?: string | undefined;
  /** On Cloud Run: the client address is X-Forwarded-For's last entry. */
  behindGoogleFrontEnd?: boolean;
}

/**
 * Writes the request's log line once it is answered: severity by status (ERROR from 500, WARNING
 * from 400), Cloud Logging's `httpRequest` record with the route template and latency, the error
 * slug and cause, and the trace link from X-Cloud-Trace-Context.
 *
 * @example
 * logRequest(req, res, { route: '/session/data/{key}', startedAt, projectId: 'my-project', errorCode: 'csrf' });
 */
export function logRequest(req: Request, res: Response, entry: RequestLogEntry): void {
  const { route, startedAt, projectId, errorCode, errorCause, behindGoogleFrontEnd = false } = entry;
  const latencySeconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const status = res.statusCode;
  const trace = /^([0-9a-f]{32})/i.exec(req.get('x-cloud-trace-context') ?? '')?.[1];
  log(status >= 500 ? 'ERROR' : status >= 400 ? 'WARNING' : 'INFO', `${req.method} ${route} ${status}`, {
    httpRequest: {
      requestMethod: req.method,
      requestUrl: route,
      status,
      latency: `${latencySeconds.toFixed(6)}s`,
      userAgent: req.get('user-agent')?.slice(0, 200),
      remoteIp: clientAddress(req, behindGoogleFrontEnd),
      protocol: `HTTP/${req.httpVersion}`,
    },
    ...(errorCode ? { errorCode } : {}),
    ...(errorCause ? { errorCause } : {}),
    ...(trace ? { 'logging.googleapis.com/trace': `projects/${projectId}/traces/${trace}` } : {}),
  });
}
