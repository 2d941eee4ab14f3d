import { ConfigError } from '../../../lib/core/errors';
import { clearedCookie, readCookieValues, sessionCookie, validateCookieName } from '../../../lib/core/cookies';

describe('cookie names (SESSION_COOKIE_NAME)', () => {
  test('a name with a character outside the RFC 6265 token anywhere is refused', () => {
    for (const name of ['a b', 'a;b', ' a', 'a=', '=a', 'a,', '(a', 'a"']) {
      expect(() => validateCookieName(name, 'SESSION_COOKIE_NAME')).toThrow(
        new ConfigError('SESSION_COOKIE_NAME', 'is not a valid cookie name'),
      );
    }
    expect(validateCookieName("a!#$%&'*+-.^_`|~Z9", 'V')).toBe("a!#$%&'*+-.^_`|~Z9");
  });

  test('a bare prefix is refused, a prefix followed by a name is not', () => {
    for (const name of ['__Host-', '__Secure-', '__host-']) {
      expect(() => validateCookieName(name, 'V')).toThrow(new ConfigError('V', 'a cookie prefix needs a name after it'));
    }
    expect(validateCookieName('__Host-sid', 'V')).toBe('__Host-sid');
    expect(validateCookieName('__Secure-sid', 'V')).toBe('__Secure-sid');
    expect(validateCookieName('x__Host-', 'V')).toBe('x__Host-');
  });

  test('__Host- must be written with its exact case; the same letters later in a name are fine', () => {
    expect(() => validateCookieName('__HOST-sid', 'V')).toThrow(/case-sensitive in some browsers: write it as __Host-/);
    expect(validateCookieName('sid__host-x', 'V')).toBe('sid__host-x');
  });
});

describe('Set-Cookie headers', () => {
  test('SameSite is sent as configured and left out when off', () => {
    expect(sessionCookie({ name: 's', sameSite: 'strict', persistent: false }, 'v', 60)).toBe(
      's=v; Path=/; HttpOnly; Secure; SameSite=Strict',
    );
    expect(sessionCookie({ name: 's', sameSite: false, persistent: true }, 'v', 60)).toBe('s=v; Max-Age=60; Path=/; HttpOnly; Secure');
    expect(clearedCookie({ name: 's', sameSite: 'none', persistent: false })).toBe(
      's=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=None',
    );
    expect(clearedCookie({ name: 's', sameSite: false, persistent: false })).not.toMatch(/SameSite/i);
  });
});

/** Cookie tossing: a sibling subdomain may plant a second cookie of the name; the session sees every value. */
describe('reading every value of the session cookie (readCookieValues)', () => {
  test('every value under the name, in header order, trimmed; other names and names that only contain it are ignored', () => {
    expect(readCookieValues('sid=a; other=b;  sid = c ;xsid=d; sidx=e; sid=f', 'sid')).toEqual(['a', 'c', 'f']);
  });

  test('a value may hold "="; a pair without "=" or with an empty name is skipped; an empty value is kept', () => {
    expect(readCookieValues('sid=a=b; sid; =x; sid=', 'sid')).toEqual(['a=b', '']);
  });

  test('quotes around a value are removed, a lone quote is kept as sent', () => {
    expect(readCookieValues('sid="abc"; sid="; sid=""; sid="x; sid=x"', 'sid')).toEqual(['abc', '"', '', '"x', 'x"']);
  });

  test('a pair without "=" is no value, even when it starts with the name', () => {
    expect(readCookieValues('sidx; sid=a', 'sid')).toEqual(['a']);
  });

  test('no header or an empty one carries no value', () => {
    expect(readCookieValues(undefined, 'sid')).toEqual([]);
    expect(readCookieValues('', 'sid')).toEqual([]);
  });
});

describe('Set-Cookie of a session', () => {
  test('a browser-session cookie has no Max-Age; a persistent one lives as long as the session', () => {
    expect(sessionCookie({ name: 's', sameSite: 'lax', persistent: false }, 'v', 60)).not.toMatch(/Max-Age|Expires/);
    expect(sessionCookie({ name: 's', sameSite: 'lax', persistent: true }, 'v', 3600)).toBe(
      's=v; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax',
    );
  });
});
