import { serialize } from 'cookie';
import { ConfigError } from './errors';

/** The cookie's SameSite attribute; `false` sends none (SESSION_SAME_SITE=off). */
export type SameSite = 'lax' | 'strict' | 'none' | false;

/** How the session cookie is named and sent (the cookie part of SessionSettings). */
export interface CookieSettings {
  name: string;
  sameSite: SameSite;
  /** true: the cookie carries Max-Age = lifetime; false: a browser-session cookie (the seed's default). */
  persistent: boolean;
}

/** RFC 6265 cookie-name token characters. */
const NAME_PATTERN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Cookie names with the `__Host-` prefix are only accepted by browsers with Secure, Path=/ and no
 * Domain; we always emit exactly that, so the check here is only that the name itself is a token.
 * Used by loadConfig() on SESSION_COOKIE_NAME (`variable` names it in the ConfigError), so that a
 * bad name stops start-up instead of producing cookies browsers drop. Returns the name unchanged.
 *
 * @example
 * validateCookieName('__Host-viur_cookie_p1', 'SESSION_COOKIE_NAME'); // '__Host-viur_cookie_p1'
 * validateCookieName('__host-sid', 'SESSION_COOKIE_NAME'); // throws ConfigError: write it as __Host-
 */
export function validateCookieName(name: string, variable: string): string {
  if (!NAME_PATTERN.test(name)) throw new ConfigError(variable, 'is not a valid cookie name');
  if (/^__(host|secure)-$/i.test(name)) throw new ConfigError(variable, 'a cookie prefix needs a name after it');
  if (/^__host-/i.test(name) && !name.startsWith('__Host-')) {
    throw new ConfigError(variable, 'the __Host- prefix is case-sensitive in some browsers: write it as __Host-');
  }
  return name;
}

/**
 * Every value the Cookie header carries under `name`, in header order. The cookie library keeps only
 * the first; a sibling subdomain can plant a cookie of the same name that browsers send first
 * (cookie tossing), so the caller must see them all. No decoding: session ids are base64url.
 * Surrounding double quotes are removed; an absent header gives `[]`.
 *
 * @example
 * readCookieValues('theme=dark; sid=a; sid="b"', 'sid'); // ['a', 'b']
 */
export function readCookieValues(header: string | undefined, name: string): string[] {
  if (!header) return [];
  const values: string[] = [];
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
    let value = pair.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    values.push(value);
  }
  return values;
}

/**
 * The Set-Cookie value that hands the browser a session id: always `Path=/; HttpOnly; Secure`, the
 * configured SameSite, and `Max-Age` only for a persistent cookie. SessionManager.save() builds it
 * into SaveOutcome.setCookie; call it yourself only to send a cookie outside that path.
 *
 * @example
 * sessionCookie({ name: '__Host-viur_cookie_p1', sameSite: 'lax', persistent: true }, sessionId, 3600);
 * // '__Host-viur_cookie_p1=<id>; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax'
 */
export function sessionCookie(settings: CookieSettings, value: string, lifetimeSeconds: number): string {
  return serialize(settings.name, value, {
    path: '/',
    httpOnly: true,
    secure: true,
    // The cookie library writes no SameSite attribute for false (SESSION_SAME_SITE=off).
    sameSite: settings.sameSite,
    maxAge: settings.persistent ? lifetimeSeconds : undefined,
  });
}

/**
 * Tells the browser to drop a cookie that names no live session: an empty value with `Max-Age=0`
 * and an expiry in 1970, with the same Path, Secure and SameSite as the cookie it replaces.
 *
 * @example
 * res.appendHeader('Set-Cookie', clearedCookie(settings.cookie)); // '__Host-viur_cookie_p1=; Max-Age=0; Path=/; …'
 */
export function clearedCookie(settings: CookieSettings): string {
  return serialize(settings.name, '', {
    path: '/',
    httpOnly: true,
    secure: true,
    // The cookie library writes no SameSite attribute for false (SESSION_SAME_SITE=off).
    sameSite: settings.sameSite,
    maxAge: 0,
    expires: new Date(0),
  });
}
