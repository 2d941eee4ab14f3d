/** Log lines: JSON for Cloud Logging and any pipe, a readable form for a person at a terminal. */
import { createHmac } from 'node:crypto';
import { derivedDigestKey, prettyLine, streamSink, userDigest, userLogFields } from '../../../lib/setup/log';

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

describe('user ids in log lines', () => {
  const digestOptions = { logUserIds: 'digest', logDigestKey: 'key-1' } as const;

  test('the digest is HMAC-SHA-256 of the id under the key, its first 16 hex digits: stable, keyed, one per user', () => {
    expect(userDigest('alice@example.com', 'key-1')).toBe(
      createHmac('sha256', 'key-1').update('alice@example.com').digest('hex').slice(0, 16),
    );
    expect(userDigest('alice@example.com', 'key-1')).toMatch(/^[0-9a-f]{16}$/);
    expect(userDigest('alice@example.com', 'key-1')).toBe(userDigest('alice@example.com', 'key-1'));
    expect(userDigest('alice@example.com', 'key-2')).not.toBe(userDigest('alice@example.com', 'key-1'));
    expect(userDigest('bob@example.com', 'key-1')).not.toBe(userDigest('alice@example.com', 'key-1'));
  });

  test('by default a user is named by its digest only; raw ids only by opt-in; null and the guest marker as they are', () => {
    expect(userLogFields('alice@example.com', digestOptions)).toEqual({ userDigest: userDigest('alice@example.com', 'key-1') });
    expect(JSON.stringify(userLogFields('alice@example.com', digestOptions))).not.toContain('alice');
    expect(userLogFields('alice@example.com', { ...digestOptions, logUserIds: 'raw' })).toEqual({ user: 'alice@example.com' });
    expect(userLogFields(null, digestOptions)).toEqual({ user: null });
    expect(userLogFields('__guest__', digestOptions)).toEqual({ user: '__guest__' });
  });

  test('without a key of its own a deployment derives one from the project id: the same on every instance', () => {
    expect(derivedDigestKey('p1')).toBe(derivedDigestKey('p1'));
    expect(derivedDigestKey('p1')).not.toBe(derivedDigestKey('p2'));
  });
});
