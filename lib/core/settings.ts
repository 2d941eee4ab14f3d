import type { CookieSettings } from './cookies';

/**
 * How sessions behave: lifetimes, limits, what login and logout keep, the cookie. `Config.session`
 * holds it as loadConfig() read it; the variables are listed in README.md#configuration.
 */
export interface SessionSettings {
  /** Idle lifetime: a session not seen for this long is dead. */
  lifetimeSeconds: number;
  /** lastSeen is rewritten on a read-only request only when older than this. */
  refreshIntervalSeconds: number;
  /** Data keys a login keeps (everything else is dropped with the old session). */
  persistentFieldsOnLogin: readonly string[];
  /** Data keys a logout keeps. */
  persistentFieldsOnLogout: readonly string[];
  /** Limit on the data as stored (keys plus JSON text, UTF-8). */
  maxDataBytes: number;
  /** One-time keys valid at once per session; the oldest is dropped beyond this. */
  maxSecurityKeys: number;
  /** Most keys the data may hold. */
  maxDataKeys: number;
  /** A session ends this long after createdAt, however busy; 0: no absolute limit. */
  absoluteLifetimeSeconds: number;
  /** Sessions one user may have; beyond it, login ends the least recently used (devices.ts byCapRank). 0: no limit. */
  maxSessionsPerUser: number;
  /** Name, SameSite and persistence of the session cookie. */
  cookie: CookieSettings;
}
