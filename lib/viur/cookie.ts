import type { SameSite } from '../core/cookies';

/**
 * ViUR's session cookie, attribute for attribute: `Session.build_flags` writes
 * `<name>=<value>;Path=/;HttpOnly;SameSite=lax;Secure;Max-Age=<lifetime>` (viur-core v3.8.35
 * src/viur/core/session.py:134 and 161-168; the dev-server variants are not ours to copy).
 */

/** How the viur format names and sends the cookie: SESSION_COOKIE_NAME and SESSION_SAME_SITE. */
export interface ViurCookieSettings {
  name: string;
  sameSite: SameSite;
}

/**
 * The Set-Cookie value a ViUR app's own save sends: the same attributes in the same order, and
 * Max-Age = the session lifetime (ViUR's default `use_session_cookie = False`, session.py:55).
 *
 * @example
 * viurCookie({ name: 'viur_cookie_p1', sameSite: 'lax' }, cookieValue, 3600);
 * // 'viur_cookie_p1=<value>;Path=/;HttpOnly;SameSite=lax;Secure;Max-Age=3600'
 */
export function viurCookie(settings: ViurCookieSettings, value: string, lifetimeSeconds: number): string {
  const flags = ['Path=/', 'HttpOnly', settings.sameSite ? `SameSite=${settings.sameSite}` : null, 'Secure', `Max-Age=${lifetimeSeconds}`];
  return `${settings.name}=${value};${flags.filter((f) => f !== null).join(';')}`;
}

/**
 * Tells the browser to drop the cookie (ViUR's `response.unset_cookie`, session.py:247): an empty
 * value with Max-Age=0 and the same path and flags.
 *
 * @example
 * clearedViurCookie({ name: 'viur_cookie_p1', sameSite: 'lax' }); // 'viur_cookie_p1=;Path=/;HttpOnly;SameSite=lax;Secure;Max-Age=0'
 */
export function clearedViurCookie(settings: ViurCookieSettings): string {
  return viurCookie(settings, '', 0);
}
