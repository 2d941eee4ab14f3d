import { dirname } from 'node:path';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { connect, type Socket } from 'node:net';
import { installRequestHooks, LINGER_BYTES, readJsonBody, requestBodyLimit } from '../../../functions/http/body';
import { MAX_MESSAGE_BYTES, MAX_PUSH_BYTES } from '../../../lib/core/limits';
import { type HttpError } from '../../../functions/http/errors';

type BodyRequest = IncomingMessage & { body?: unknown; rawBody?: Buffer; jsonBody?: boolean };

const LIMIT = 64;
/** The linger time, shortened from LINGER_MS's second: tests wait it out. */
const LINGER = 300;
/** The body deadline, shortened from BODY_TIMEOUT_MS's ten seconds. */
const BODY_TIMEOUT = 700;
/** The one origin the hooks are given as allowed. */
const PAGE = 'https://www.example.test';
const pastLinger = () => new Promise((r) => setTimeout(r, LINGER + 150));

/** A plain node HTTP handler around readJsonBody: what it parsed, or the error it answered. */
function handler(req: BodyRequest, res: ServerResponse): void {
  res.setHeader('Content-Type', 'application/json');
  readJsonBody(req, LIMIT).then(
    () => res.end(JSON.stringify({ body: req.body ?? null, raw: req.rawBody?.toString('utf8') ?? null, json: req.jsonBody ?? false })),
    (err: HttpError) => {
      res.statusCode = err.status;
      res.end(JSON.stringify({ code: err.code, message: err.message }));
    },
  );
}

const post = (type: string | undefined, body: string | Buffer) => {
  const r = request(handler).post('/');
  if (type !== undefined) r.set('Content-Type', type);
  return r.send(body);
};

describe('JSON bodies read before functions-framework', () => {
  test('a body of exactly the limit is read; one byte more is 413 (by Content-Length and by what arrives)', async () => {
    const exact = JSON.stringify('x'.repeat(LIMIT - 2));
    expect((await post('application/json', exact)).body).toEqual({ body: 'x'.repeat(LIMIT - 2), raw: exact, json: true });
    const over = JSON.stringify('x'.repeat(LIMIT - 1));
    const byLength = await post('application/json', over);
    expect([byLength.status, byLength.body]).toEqual([413, { code: 'too_large', message: 'the request body exceeds 64 bytes' }]);
    // Chunked, no Content-Length: the limit is enforced on the bytes as they arrive.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(handler).post('/').set('Content-Type', 'application/json').set('Transfer-Encoding', 'chunked');
      req.write(over.slice(0, 40));
      req.write(over.slice(40));
      req.end((err, res) => (err ? reject(err) : resolve({ status: res.status, body: res.text })));
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body)).toEqual({ code: 'too_large', message: 'the request body exceeds 64 bytes' });
  });

  test('JSON media types: application/json and any +json, in any case; a top-level primitive is a body', async () => {
    for (const type of [
      'application/json',
      'APPLICATION/JSON',
      'application/merge-patch+json',
      'application/vnd.api+json; charset=utf-8',
      'application/json;charset="UTF-8"',
      'application/json; charset=utf8',
    ]) {
      expect((await post(type, '"text"')).body).toMatchObject({ body: 'text', json: true });
    }
  });

  test('other media types are not read as JSON', async () => {
    for (const type of ['text/json', 'application/jsonx', 'xapplication/json', 'application/json-seq']) {
      expect((await post(type, '"text"')).body).toEqual({ body: null, raw: null, json: false });
    }
  });

  test('only UTF-8 JSON is accepted', async () => {
    const res = await post('application/json; charset=latin1', '"x"');
    expect([res.status, res.body]).toEqual([415, { code: 'unsupported_media_type', message: 'JSON bodies must be UTF-8' }]);
    expect((await post('application/json; foo=bar; charset=utf-8', '"x"')).body).toMatchObject({ body: 'x' });
  });

  test('a request without a body is left alone: no body, no raw body, not marked JSON', async () => {
    const empty = await request(handler).post('/').set('Content-Type', 'application/json').set('Content-Length', '0');
    expect(empty.body).toEqual({ body: null, raw: null, json: false });
    const none = await request(handler).get('/').set('Content-Type', 'application/json');
    expect(none.body).toEqual({ body: null, raw: null, json: false });
  });

  /**
   * Raw requests (supertest adds a Content-Type to every body): `head` is written at once, the
   * body only if given; the answer is read as soon as it comes.
   */
  async function raw(headers: Record<string, string>, body?: string): Promise<{ status: number; body: unknown }> {
    const server = createServer(handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      return await new Promise((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: (server.address() as AddressInfo).port, method: 'POST', path: '/', headers },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
          },
        );
        req.on('error', reject);
        // Without a body the request stays open: only the answer ends it.
        if (body === undefined) req.flushHeaders();
        else req.end(body);
      });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  test('a body without a Content-Type is read and dropped, not parsed', async () => {
    expect(await raw({ 'Content-Length': '5' }, '"abc"')).toEqual({ status: 200, body: { body: null, raw: null, json: false } });
  });

  test('a declared Content-Length over the limit is refused before any of the body is sent', async () => {
    const res = await raw({ 'Content-Type': 'application/json', 'Content-Length': String(LIMIT + 1) });
    expect(res).toEqual({ status: 413, body: { code: 'too_large', message: 'the request body exceeds 64 bytes' } });
  });

  test('only a parameter named charset is the charset', async () => {
    for (const type of ['application/json; xcharset=latin1', 'application/json; mycharset=latin1; charset=utf-8']) {
      const res = await post(type, '"x"');
      expect([res.status, res.body]).toEqual([200, { body: 'x', raw: '"x"', json: true }]);
    }
  });

  test('an empty or blank body is no body; invalid JSON is 400 bad_json', async () => {
    expect((await post('application/json', '  ')).body).toEqual({ body: null, raw: '  ', json: true });
    const bad = await post('application/json', '{"a":');
    expect([bad.status, bad.body]).toEqual([400, { code: 'bad_json', message: 'the request body is not valid JSON' }]);
  });
});

test('the body limit holds the largest data value, and the push of the largest kill message whatever the data limit (issue 26, finding 6)', () => {
  // Base64 is 4 bytes for every 3, plus the push envelope.
  expect(MAX_PUSH_BYTES).toBeGreaterThanOrEqual(Buffer.alloc(MAX_MESSAGE_BYTES).toString('base64').length + 1024);
  for (const data of [1, 4096, 786_432, 1_000_000]) {
    expect(requestBodyLimit(data)).toBeGreaterThanOrEqual(MAX_PUSH_BYTES);
    expect(requestBodyLimit(data)).toBeGreaterThanOrEqual(data + 64 * 1024);
  }
  expect(requestBodyLimit(4096)).toBe(1_463_640);
  expect(requestBodyLimit(2_000_000)).toBe(2_000_000 + 64 * 1024);
});

describe('errors that never reach a function get the JSON error body', () => {
  const frameworkDir = dirname(require.resolve('@google-cloud/functions-framework'));
  // The express functions-framework builds its server with, hooked the way the functions module does.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require(require.resolve('express', { paths: [frameworkDir] })) as () => {
    get(path: string, h: (req: unknown, res: ServerResponse & { json(v: unknown): void }, next: (e?: unknown) => void) => void): void;
    post(path: string, h: (req: BodyRequest, res: ServerResponse & { json(v: unknown): void }) => void): void;
  };
  // The first install counts for the whole file (both express apps below).
  installRequestHooks(LIMIT, { lingerMs: LINGER, bodyTimeoutMs: BODY_TIMEOUT, allowedOrigins: () => [PAGE] });
  installRequestHooks(1, { lingerMs: 0, bodyTimeoutMs: 0 }); // a second install changes nothing (the hooks are installed once)
  const app = express();
  app.post('/echo', (req, res) => res.json({ body: req.body }));
  app.get('/fail/:status', (req, _res, next) =>
    next(Object.assign(new Error('boom /srv/x.js'), { status: Number((req as { params: { status: string } }).params.status) })),
  );

  test('the body is parsed for the route; a too large one is 413 with Connection: close', async () => {
    expect(
      (
        await request(app as never)
          .post('/echo')
          .set('Content-Type', 'application/json')
          .send('[1,2]')
      ).body,
    ).toEqual({ body: [1, 2] });
    const big = await request(app as never)
      .post('/echo')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify('x'.repeat(LIMIT)));
    expect([big.status, big.headers.connection, big.body]).toEqual([
      413,
      'close',
      { error: { code: 'too_large', message: 'the request body exceeds 64 bytes' } },
    ]);
    const bad = await request(app as never)
      .post('/echo')
      .set('Content-Type', 'application/json')
      .send('{');
    expect([bad.status, bad.headers['content-type'], bad.body]).toEqual([
      400,
      'application/json; charset=utf-8',
      { error: { code: 'bad_json', message: 'the request body is not valid JSON' } },
    ]);
  });

  test.each([
    ['no route', '/nowhere', 404, { code: 'not_found', message: 'no such route' }],
    ['a 413 from a parser', '/fail/413', 413, { code: 'too_large', message: 'the request body is too large' }],
    ['a 415 from a parser', '/fail/415', 415, { code: 'unsupported_media_type', message: 'unsupported body encoding' }],
    ['another 4xx', '/fail/400', 400, { code: 'bad_request', message: 'the request could not be parsed' }],
    ['the highest 4xx', '/fail/499', 400, { code: 'bad_request', message: 'the request could not be parsed' }],
    ['a 500', '/fail/500', 500, { code: 'internal', message: 'internal error' }],
    ['a 399', '/fail/399', 500, { code: 'internal', message: 'internal error' }],
  ])('%s', async (_name, path, status, error) => {
    const res = await request(app as never).get(path);
    expect(res.status).toBe(status);
    expect(res.body).toEqual({ error });
    expect(res.text).not.toContain('/srv/x.js');
  });
});

/**
 * A raw client on one connection, for what supertest hides: the timing of writes against the
 * answer, keep-alive reuse and who closes the connection.
 */
class RawClient {
  readonly socket: Socket;
  private received = '';
  private waiters: Array<() => void> = [];
  readonly closed: Promise<void>;
  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('data', (c: Buffer) => {
      this.received += c.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
    // The server may cut the connection while we write (that is what some tests check).
    this.socket.on('error', () => {});
    this.closed = new Promise((r) => this.socket.once('close', () => r()));
  }
  /** Sends a request without a body on this connection and waits for its answer. */
  get(path: string): Promise<{ status: number; headers: string; body: string }> {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    return this.answer();
  }
  /** The next complete answer (head and Content-Length body), removed from what was received. */
  async answer(): Promise<{ status: number; headers: string; body: string }> {
    for (;;) {
      const end = this.received.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.received.slice(0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (this.received.length >= end + 4 + length) {
          const body = this.received.slice(end + 4, end + 4 + length);
          this.received = this.received.slice(end + 4 + length);
          return { status: Number(head.split(' ')[1]), headers: head.toLowerCase(), body };
        }
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  /**
   * Writes `total` bytes in 64 KiB chunks, each after the previous one was taken; stops if the
   * connection is cut. `chunked`: in chunked transfer coding, ending the body if `last`.
   */
  async send(total: number, chunked = false, last = true): Promise<void> {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const write = (b: Buffer | string) => new Promise<void>((r) => this.socket.write(b, () => r()));
    for (let sent = 0; sent < total && !this.socket.destroyed; sent += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
      await write(chunked ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part);
    }
    if (chunked && last && !this.socket.destroyed) await write('0\r\n\r\n');
  }
}

describe('a refused upload: the client reads the answer, then the connection is closed', () => {
  const frameworkDir = dirname(require.resolve('@google-cloud/functions-framework'));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const express = require(require.resolve('express', { paths: [frameworkDir] })) as () => {
    post(path: string, h: (req: BodyRequest, res: ServerResponse & { json(v: unknown): void }) => void): void;
    get(path: string, h: (req: unknown, res: ServerResponse, next: (e?: unknown) => void) => void): void;
  };
  installRequestHooks(LIMIT, { lingerMs: LINGER, bodyTimeoutMs: BODY_TIMEOUT });
  const app = express();
  app.post('/echo', (req, res) => res.json({ body: req.body }));
  app.get('/partial', (_req, res, next) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '100' });
    res.write('part');
    next(new Error('failed half-way'));
  });

  let server: Server;
  /** Server side of each connection: how much of the upload it read. */
  const sockets: Socket[] = [];
  beforeAll(async () => {
    server = createServer(app as never);
    server.on('connection', (s: Socket) => sockets.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const port = () => (server.address() as AddressInfo).port;
  const upload = (length: number) =>
    `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

  test.each([
    ['refused by its declared length', false],
    ['refused as it arrives (chunked)', true],
  ])('a client that goes on sending a body %s may finish it, and keeps its connection', async (_name, chunked) => {
    const client = new RawClient(port());
    const total = 2 * 1024 * 1024;
    if (chunked) {
      client.socket.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
      // Past the limit: the server answers while the rest is still to come.
      await client.send(LIMIT + 1, true, false);
    } else {
      client.socket.write(upload(total));
    }
    const answer = await client.answer();
    expect([answer.status, JSON.parse(answer.body)]).toEqual([
      413,
      { error: { code: 'too_large', message: 'the request body exceeds 64 bytes' } },
    ]);
    await client.send(total, chunked);
    // The server read the rest (dropping it): the next request on the connection is answered, also
    // once the linger time is over (the body ended, so nothing closes the connection).
    expect((await client.get('/nowhere')).status).toBe(404);
    await pastLinger();
    expect((await client.get('/nowhere')).status).toBe(404);
    client.socket.destroy();
  });

  test('a client that stops sending is disconnected (after the linger time)', async () => {
    const client = new RawClient(port());
    client.socket.write(upload(1024 * 1024) + 'x'.repeat(100));
    expect((await client.answer()).status).toBe(413);
    await client.closed;
    expect(client.socket.destroyed).toBe(true);
  });

  test('a client that sends more than LINGER_BYTES after the answer is cut off', async () => {
    const client = new RawClient(port());
    const total = 4 * LINGER_BYTES;
    client.socket.write(upload(total));
    expect((await client.answer()).status).toBe(413);
    await client.send(total);
    await client.closed;
    // Cut at the bound: the chunk that crossed it is the last one read (64 KiB at most).
    expect(sockets.at(-1)!.bytesRead).toBeLessThan(LINGER_BYTES + 1024 * 1024);
  });

  test('a refused request that was read in full keeps its keep-alive connection', async () => {
    const client = new RawClient(port());
    client.socket.write(`${upload(1)}{`);
    const bad = await client.answer();
    expect([bad.status, JSON.parse(bad.body)]).toEqual([
      400,
      { error: { code: 'bad_json', message: 'the request body is not valid JSON' } },
    ]);
    expect(bad.headers).not.toContain('connection: close');
    // Past the linger time: a refused request that was complete is not lingered on, nothing closes it.
    await pastLinger();
    expect((await client.get('/nowhere')).status).toBe(404);
    client.socket.destroy();
  });

  test.each([
    ['a JSON body', 'application/json', '"'],
    ['a body of another type (read and dropped)', 'text/plain', 'x'],
    ['a chunked body', 'application/json', null],
  ])(
    '%s trickling in a byte at a time: 408 request_timeout at the body deadline, then the connection is closed (issue 26, finding 8)',
    async (_name, type, first) => {
      const client = new RawClient(port());
      const head =
        first === null
          ? `POST /echo HTTP/1.1\r\nHost: x\r\nOrigin: ${PAGE}\r\nContent-Type: ${type}\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n"\r\n`
          : `POST /echo HTTP/1.1\r\nHost: x\r\nOrigin: ${PAGE}\r\nContent-Type: ${type}\r\nContent-Length: ${LIMIT}\r\n\r\n${first}`;
      client.socket.write(head);
      const trickle = setInterval(() => client.socket.write(first === null ? '1\r\nx\r\n' : 'x'), 100);
      try {
        const answer = await client.answer();
        expect([answer.status, JSON.parse(answer.body)]).toEqual([
          408,
          { error: { code: 'request_timeout', message: `the request body did not arrive within ${BODY_TIMEOUT / 1000} s` } },
        ]);
        expect(answer.headers).toContain('connection: close');
        expect(answer.headers).toContain('content-type: application/json');
        // The headers of every answer (issue 26, finding 9), so the page can read the 408.
        for (const h of ['cache-control: no-store', 'vary: origin', `access-control-allow-origin: ${PAGE}`]) {
          expect(answer.headers).toContain(h.toLowerCase());
        }
        await client.closed;
      } finally {
        clearInterval(trickle);
      }
      expect(sockets.at(-1)!.destroyed).toBe(true);
    },
  );

  test('the deadline covers the body only: a body that arrives in time is read, and an idle keep-alive connection is not cut', async () => {
    const client = new RawClient(port());
    client.socket.write(upload(5));
    await new Promise((r) => setTimeout(r, BODY_TIMEOUT / 2));
    client.socket.write('[1,2]');
    const answer = await client.answer();
    expect([answer.status, JSON.parse(answer.body)]).toEqual([200, { body: [1, 2] }]);
    // Longer than the deadline between requests: nothing fires once a body has ended.
    await new Promise((r) => setTimeout(r, BODY_TIMEOUT + 200));
    expect((await client.get('/nowhere')).status).toBe(404);
    expect(client.socket.destroyed).toBe(false);
    client.socket.destroy();
  });

  test('a failure after the answer began cuts the connection instead of splicing an error into it', async () => {
    const client = new RawClient(port());
    void client.get('/partial');
    await client.closed;
    expect(sockets.at(-1)!.destroyed).toBe(true);
  });
});

test('a client that disconnects mid-body: the read fails with 400 bad_request, nothing is parsed', async () => {
  let server: Server | undefined;
  const outcome = new Promise<unknown>((resolve) => {
    server = createServer((req: BodyRequest) => {
      readJsonBody(req, 1024).then(
        () => resolve({ body: req.body }),
        (err: HttpError) => resolve({ status: err.status, code: err.code, message: err.message }),
      );
    });
    server.listen(0, '127.0.0.1', () => {
      const client = connect((server!.address() as AddressInfo).port, '127.0.0.1');
      client.on('error', () => {});
      client.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":');
      // Only once the server has the partial body: then cut.
      setTimeout(() => client.destroy(), 50);
    });
  });
  const result = await outcome;
  server!.close();
  expect(result).toEqual({ status: 400, code: 'bad_request', message: 'the request body could not be read' });
});
