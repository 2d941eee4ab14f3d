import express from 'express';
import request from 'supertest';
import { failureCause, HttpError, respondWithError, sendError, sendJson, toHttpError } from '../../../functions/http/errors';
import { setLogSink } from '../../../lib/setup/log';
import { DataTooLargeError, KeyNotFoundError, StoreUnavailableError } from '../../../lib/core/errors';

/** What a client sees of a failure: status, JSON error body, Retry-After on 503 only; nothing internal. */
describe('HTTP errors', () => {
  test('library errors keep their status and code; an unavailable store also says when to retry', () => {
    const e503 = toHttpError(new StoreUnavailableError());
    expect([e503.status, e503.code, e503.message, e503.headers]).toEqual([
      503,
      'store_unavailable',
      'the session store is unavailable',
      { 'Retry-After': '1' },
    ]);
    const e413 = toHttpError(new DataTooLargeError(10, 5));
    expect([e413.status, e413.code, e413.headers]).toEqual([413, 'too_large', {}]);
    const e404 = toHttpError(new KeyNotFoundError('k'));
    expect([e404.status, e404.code, e404.message]).toEqual([404, 'not_found', 'session has no key "k"']);
    const own = new HttpError(418, 'teapot', 'short and stout');
    expect(toHttpError(own)).toBe(own);
  });

  test('anything else is a 500 that reveals nothing of the error', () => {
    const e = toHttpError(new Error('secret detail at /srv/app.js:12'));
    expect([e.status, e.code, e.message, e.headers]).toEqual([500, 'internal', 'internal error', {}]);
  });

  test('sendError writes the JSON error body with the headers; after headers were sent it leaves the response alone', async () => {
    const app = express();
    app.get('/fail', (_req, res) => sendError(res as never, toHttpError(new StoreUnavailableError())));
    app.get('/late', (_req, res) => {
      res.status(200).write('partial');
      sendError(res as never, new HttpError(500, 'internal', 'internal error'));
      res.end();
    });
    const fail = await request(app).get('/fail');
    expect(fail.status).toBe(503);
    expect(fail.headers['retry-after']).toBe('1');
    expect(fail.body).toEqual({ error: { code: 'store_unavailable', message: 'the session store is unavailable' } });
    const late = await request(app).get('/late');
    expect(late.status).toBe(200);
    expect(late.text).toBe('partial');
  });
});

describe('the cause of a 503 in the request log (failureCause)', () => {
  test('the first line of the underlying error, none for an error without a cause or a non-error', () => {
    expect(
      failureCause(new StoreUnavailableError('the session store is unavailable', new Error('4 DEADLINE_EXCEEDED: late\n    at stack'))),
    ).toBe('4 DEADLINE_EXCEEDED: late');
    expect(failureCause(new StoreUnavailableError())).toBeUndefined();
    expect(failureCause('boom')).toBeUndefined();
    expect(failureCause({ cause: new Error('not an Error itself') })).toBeUndefined();
  });
});

describe('the one path from a thrown error to the answer (respondWithError)', () => {
  const lines: Array<{ line: string; severity: string }> = [];
  beforeEach(() => {
    lines.length = 0;
    setLogSink((line, severity) => lines.push({ line, severity }));
  });
  afterEach(() => setLogSink(null));

  function app(err: unknown): express.Express {
    const a = express();
    a.get('/', (_req, res) => {
      const outcome = respondWithError(res, err, 'testApi');
      res.setHeader('X-Outcome', JSON.stringify(outcome));
    });
    return a;
  }

  test('a library error: its status, slug and message, the cause for the log line, no ERROR line', async () => {
    const cause = new Error('4 DEADLINE_EXCEEDED: late\n    at stack');
    const res = await request(app(new StoreUnavailableError('the session store is unavailable', cause))).get('/');
    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.text).toBe('{"error":{"code":"store_unavailable","message":"the session store is unavailable"}}\n');
    expect(lines).toEqual([]);
  });

  test('anything else: 500 internal to the client, its stack in one ERROR line naming where it happened', async () => {
    const res = await request(app(new Error('secret detail'))).get('/');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: { code: 'internal', message: 'internal error' } });
    expect(res.text).not.toContain('secret');
    expect(lines).toHaveLength(1);
    expect(lines[0].severity).toBe('ERROR');
    const record = JSON.parse(lines[0].line) as { message: string; stack: string };
    expect(record.message).toBe('unhandled error in testApi');
    expect(record.stack).toContain('secret detail');
    const thrown = await request(app('a string')).get('/');
    expect(thrown.status).toBe(500);
    expect((JSON.parse(lines[1].line) as { stack: string }).stack).toBe('a string');
  });

  test('it returns the slug and the cause for the request log', () => {
    const headers: Record<string, string> = {};
    const res = { headersSent: false, statusCode: 0, setHeader: (k: string, v: string) => (headers[k] = v), end: () => undefined };
    const cause = new Error('no Google credentials: none\nmore');
    expect(respondWithError(res as never, new StoreUnavailableError('unavailable', cause), 'x')).toEqual({
      code: 'store_unavailable',
      cause: 'no Google credentials: none',
    });
    expect(respondWithError(res as never, new HttpError(404, 'not_found', 'no such route'), 'x')).toEqual({
      code: 'not_found',
      cause: undefined,
    });
  });

  test('sendJson: the status, JSON with a closing newline', async () => {
    const a = express();
    a.get('/', (_req, res) => sendJson(res, 201, { ok: true }));
    const res = await request(a).get('/');
    expect([res.status, res.text, res.headers['content-type']]).toEqual([201, '{"ok":true}\n', 'application/json; charset=utf-8']);
  });
});
