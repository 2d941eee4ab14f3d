import express from 'express';
import request from 'supertest';
import { failureCause, HttpError, sendError, toHttpError } from '../../../functions/http/errors';
import { DataTooLargeError, KeyNotFoundError, StoreUnavailableError } from '../../../lib/core/errors';

/** What a client sees of a failure: status, JSON error body, Retry-After on 503 only; nothing internal. */
describe('HTTP errors', () => {
  test('library errors keep their status and code; an unavailable store also says when to retry', () => {
    const e503 = toHttpError(new StoreUnavailableError());
    expect([e503.status, e503.code, e503.message, e503.headers]).toEqual([503, 'store_unavailable', 'the session store is unavailable', { 'Retry-After': '1' }]);
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
    expect(failureCause(new StoreUnavailableError('the session store is unavailable', new Error('4 DEADLINE_EXCEEDED: late\n    at stack')))).toBe('4 DEADLINE_EXCEEDED: late');
    expect(failureCause(new StoreUnavailableError())).toBeUndefined();
    expect(failureCause('boom')).toBeUndefined();
    expect(failureCause({ cause: new Error('not an Error itself') })).toBeUndefined();
  });
});
