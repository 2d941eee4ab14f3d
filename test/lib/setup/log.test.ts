/** Log lines: JSON for Cloud Logging and any pipe, a readable form for a person at a terminal. */
import { prettyLine, streamSink } from '../../../lib/setup/log';

function stream(isTTY: boolean) {
  const lines: string[] = [];
  return { isTTY, lines, write: (text: string) => lines.push(text) };
}

const REQUEST = JSON.stringify({
  severity: 'ERROR',
  message: 'GET /session 503',
  httpRequest: { requestMethod: 'GET', requestUrl: '/session', status: 503, latency: '0.012000s' },
  errorCode: 'store_unavailable',
  errorCause: 'no Google credentials: Could not load the default credentials',
});

test('not a terminal: the JSON line unchanged, warnings and errors on the error stream', () => {
  const out = stream(false);
  const err = stream(false);
  const sink = streamSink(out, err);
  sink(REQUEST, 'ERROR');
  sink(JSON.stringify({ severity: 'INFO', message: 'ok' }), 'INFO');
  expect(err.lines).toEqual([`${REQUEST}\n`]);
  expect(out.lines).toEqual(['{"severity":"INFO","message":"ok"}\n']);
});

test('a terminal: time, severity, message, latency and the fields as key=value', () => {
  const err = stream(true);
  streamSink(stream(true), err)(REQUEST, 'ERROR');
  expect(err.lines).toHaveLength(1);
  expect(err.lines[0]).toMatch(
    /^\d\d:\d\d:\d\d\.\d{3} ERROR {3}GET \/session 503 {2}\(0\.012000s\) {2}errorCode=store_unavailable {2}errorCause=no Google credentials: Could not load the default credentials\n$/,
  );
  expect(
    prettyLine(
      JSON.stringify({ severity: 'INFO', message: 'batch', deleted: 500, selector: { kind: 'expired' } }),
      new Date('2026-01-01T12:00:01.234Z'),
    ),
  ).toBe('12:00:01.234 INFO    batch  deleted=500  selector={"kind":"expired"}');
});
