import type { Request, Response } from '@google-cloud/functions-framework';
import { log } from '../../lib/setup/log';
import { clientAddress } from './clientAddress';

/**
 * One structured line per request in the shape Cloud Logging understands. It names the route
 * template, not the raw URL, and no header values beyond the user agent: cookies, keys and tokens
 * never reach the log.
 */
export function logRequest(
  req: Request,
  res: Response,
  route: string,
  startedAt: bigint,
  projectId: string,
  failure: { errorCode?: string; errorCause?: string } = {},
  behindGoogleFrontEnd = false,
): void {
  const { errorCode, errorCause } = failure;
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
