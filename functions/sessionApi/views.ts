import type { Device } from '../../lib/core/devices';
import type { JsonValue } from '../../lib/core/json';
import type { Session } from '../../lib/core/session';

/** What the API answers about a session and its devices: JSON shapes, times as ISO strings. */

export function sessionView(session: Session): { user: string | null; data: Record<string, JsonValue> } {
  return { user: session.user, data: session.toObject() };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function deviceView(d: Device): { id: string; current: boolean; createdAt: string; lastSeen: string; userAgent: string | null } {
  return { id: d.id, current: d.current, createdAt: iso(d.createdAt), lastSeen: iso(d.lastSeen), userAgent: d.userAgent };
}

/** A device as the privileged listing shows it: no `current`, the caller has no session of that user. */
export function userSessionView(d: Device): { id: string; createdAt: string; lastSeen: string; userAgent: string | null } {
  return { id: d.id, createdAt: iso(d.createdAt), lastSeen: iso(d.lastSeen), userAgent: d.userAgent };
}
