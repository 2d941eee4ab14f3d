import { dirname } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from './errors';

type BodyRequest = IncomingMessage & { body?: unknown; rawBody?: Buffer; jsonBody?: boolean };

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json$/i;

function mediaType(req: IncomingMessage): { type: string; charset: string | undefined } | null {
  const header = req.headers['content-type'];
  if (!header) return null;
  const [type, ...params] = header.split(';').map((s) => s.trim());
  const charset = params.find((p) => /^charset=/i.test(p))?.slice(8).replace(/"/g, '').toLowerCase();
  return { type: (type ?? '').toLowerCase(), charset };
}

function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, 'too_large', `the request body exceeds ${limit} bytes`));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => reject(new HttpError(400, 'bad_request', 'the request body could not be read')));
  });
}

/**
 * Reads and parses a JSON body ourselves, before functions-framework's parsers: theirs accept a
 * gigabyte, reject top-level JSON primitives (a PUT of `"text"` must work) and answer parse errors
 * with an HTML page. A body read here is complete, so body-parser leaves it alone.
 */
export async function readJsonBody(req: BodyRequest, limit: number): Promise<void> {
  const length = Number(req.headers['content-length']);
  if (Number.isFinite(length) && length > limit) throw new HttpError(413, 'too_large', `the request body exceeds ${limit} bytes`);
  const media = mediaType(req);
  if (!media || !JSON_TYPE.test(media.type)) return;
  if (media.charset && media.charset !== 'utf-8' && media.charset !== 'utf8') {
    throw new HttpError(415, 'unsupported_media_type', 'JSON bodies must be UTF-8');
  }
  const raw = await readLimited(req, limit);
  req.rawBody = raw;
  req.jsonBody = true;
  const text = raw.toString('utf8');
  if (text.trim() === '') {
    req.body = undefined;
    return;
  }
  try {
    req.body = JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'bad_json', 'the request body is not valid JSON');
  }
}

function sendRaw(res: ServerResponse, err: HttpError): void {
  if (res.headersSent) return;
  res.statusCode = err.status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  if (err.status === 413) res.setHeader('Connection', 'close');
  res.end(JSON.stringify({ error: { code: err.code, message: err.message } }));
}

/** What express would otherwise answer with an HTML page (and, outside production, a stack trace). */
function finalError(err: unknown, res: ServerResponse): void {
  if (!err) return sendRaw(res, new HttpError(404, 'not_found', 'no such route'));
  const status = typeof err === 'object' && err !== null ? Number((err as { status?: unknown }).status) : NaN;
  if (status === 413) return sendRaw(res, new HttpError(413, 'too_large', 'the request body is too large'));
  if (status === 415) return sendRaw(res, new HttpError(415, 'unsupported_media_type', 'unsupported body encoding'));
  if (status >= 400 && status < 500) return sendRaw(res, new HttpError(400, 'bad_request', 'the request could not be parsed'));
  sendRaw(res, new HttpError(500, 'internal', 'internal error'));
}

let installed = false;

/**
 * Hooks into the express application functions-framework builds (it offers no middleware hook):
 * bodies are bounded and parsed before its parsers, and errors that never reach a function get
 * the JSON error body. Must run before the framework creates its server, i.e. when the module
 * registering the functions is loaded.
 */
export function installRequestHooks(maxBodyBytes: number): void {
  if (installed) return;
  installed = true;
  const frameworkDir = dirname(require.resolve('@google-cloud/functions-framework'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require(require.resolve('express', { paths: [frameworkDir] })) as { application: Record<string, unknown> };
  type Handle = (this: unknown, req: BodyRequest, res: ServerResponse, next?: (err?: unknown) => void) => void;
  const original = express.application.handle as Handle;
  express.application.handle = function handle(this: unknown, req: BodyRequest, res: ServerResponse, next?: (err?: unknown) => void) {
    const done = next ?? ((err?: unknown) => finalError(err, res));
    readJsonBody(req, maxBodyBytes).then(
      () => original.call(this, req, res, done),
      (err: unknown) => sendRaw(res, err instanceof HttpError ? err : new HttpError(400, 'bad_request', 'the request could not be read')),
    );
  } satisfies Handle;
}
