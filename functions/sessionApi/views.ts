import type { Device } from '../../lib/core/devices';
import type { JsonValue } from '../../lib/core/json';
import type { Session } from '../../lib/core/session';

/** What the API answers about a session and its devices: JSON shapes, times as ISO strings. */

/**
 * A session as the API answers it: `{user, data}`, never its id or keys. The data is the session's
 * own, not a copy: the answer is serialised at once and nothing changes it, so a read parses the
 * stored text once and serialises it once, and its cost follows the bytes whatever their shape.
 *
 * @example
 * sendJson(res, 200, sessionView(session)); // {"user":"alice","data":{"language":"de"}}
 */
export function sessionView(session: Session): { user: string | null; data: Readonly<Record<string, JsonValue>> } {
  return { user: session.user, data: session.state.data };
}

/**
 * One value as GET /session/data/{key} answers it: the session's own (serialised at once, as in
 * sessionView), undefined when the session has no such key.
 *
 * @example
 * sendJson(res, 200, { key, value: valueView(session, key) }); // {"key":"language","value":"de"}
 */
export function valueView(session: Session, key: string): JsonValue | undefined {
  return session.has(key) ? session.state.data[key] : undefined;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * A device as GET /session/devices shows it, times as ISO 8601 strings.
 *
 * @example
 * devices.map(deviceView); // [{ id: 'WRfd3EiKQEJ8aUUGcBn6_Q', current: true, createdAt: '2026-01-01T12:00:00.000Z', … }]
 */
export function deviceView(d: Device): { id: string; current: boolean; createdAt: string; lastSeen: string; userAgent: string | null } {
  return { id: d.id, current: d.current, createdAt: iso(d.createdAt), lastSeen: iso(d.lastSeen), userAgent: d.userAgent };
}

/**
 * A device as the privileged listing shows it: no `current`, the caller has no session of that user.
 *
 * @example
 * sendJson(res, 200, { sessions: devices.map(userSessionView) });
 */
export function userSessionView(d: Device): { id: string; createdAt: string; lastSeen: string; userAgent: string | null } {
  return { id: d.id, createdAt: iso(d.createdAt), lastSeen: iso(d.lastSeen), userAgent: d.userAgent };
}
