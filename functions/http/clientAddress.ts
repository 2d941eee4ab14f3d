import type { IncomingMessage } from 'node:http';

/**
 * The client address the platform saw, for the request log. functions-framework trusts every proxy,
 * so express's `req.ip` is the leftmost X-Forwarded-For entry: whatever the client wrote there. On
 * Cloud Run, Google's front end appends the address it received the request from, so the last entry
 * is the one to believe; elsewhere (local, tests) nothing appends to the header and the socket's
 * peer is the client.
 *
 * @example
 * clientAddress(req, config.behindGoogleFrontEnd); // '203.0.113.7'
 */
export function clientAddress(req: IncomingMessage, behindGoogleFrontEnd: boolean): string | undefined {
  if (behindGoogleFrontEnd) {
    const header = req.headers['x-forwarded-for'];
    const last = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').pop()?.trim();
    if (last) return last;
  }
  return req.socket.remoteAddress;
}
