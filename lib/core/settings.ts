import type { CookieSettings } from './cookies';

/** How sessions behave: lifetimes, limits, what login and logout keep, the cookie. */
export interface SessionSettings {
  lifetimeSeconds: number;
  /** lastSeen is rewritten on a read-only request only when older than this. */
  refreshIntervalSeconds: number;
  persistentFieldsOnLogin: readonly string[];
  persistentFieldsOnLogout: readonly string[];
  /** Limit on the data as stored (keys plus JSON text, UTF-8). */
  maxDataBytes: number;
  /** One-time keys valid at once per session; the oldest is dropped beyond this. */
  maxSecurityKeys: number;
  /** Most keys the data may hold. */
  maxDataKeys: number;
  /** A session ends this long after createdAt, however busy; 0: no absolute limit. */
  absoluteLifetimeSeconds: number;
  /** Sessions one user may have; beyond it, login ends the least recently seen. 0: no limit. */
  maxSessionsPerUser: number;
  cookie: CookieSettings;
}
