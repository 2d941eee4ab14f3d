import { deviceHandle } from './devices';
import { type EndReason, type EventDraft, MAX_OUTBOX_EVENTS, type OutboxRecord, type SessionEvent } from './events';
import type { RandomSource } from './ids';
import { GUEST_USER } from './limits';
import type { StorageKey } from '../store/sessionStore';

/**
 * The outbox record for `drafts` (null when there are none): a fresh random id, the events' ids
 * derived from it (`<record id>.<index>`), the same time for all.
 *
 * @example
 * const record = outboxRecord([{ type: 'login', user: 'alice', key }], { bytes: randomBytes }, Date.now());
 * record?.events[0]; // { id: 'q3Hk….0', type: 'login', user: 'alice', device: 'WRfd3EiKQEJ8aUUGcBn6_Q', time: '2026-…' }
 */
export function outboxRecord(drafts: readonly EventDraft[], random: RandomSource, now: number): OutboxRecord | null {
  if (drafts.length === 0) return null;
  if (drafts.length > MAX_OUTBOX_EVENTS) throw new RangeError(`at most ${MAX_OUTBOX_EVENTS} events per commit`);
  const id = random.bytes(16).toString('base64url');
  const time = new Date(now).toISOString();
  const events = drafts.map((d, i): SessionEvent => {
    const event: SessionEvent = { id: `${id}.${i}`, type: d.type, user: d.user, device: deviceHandle(d.key), time };
    if (d.reason !== undefined) event.reason = d.reason;
    return event;
  });
  return { id, createdAt: now, events };
}

/** How a session changed in one commit of SessionManager.save/withSession. */
export interface SessionChange {
  /** The key the session was loaded from; null for a session this request started. */
  oldKey: StorageKey | null;
  /** The user stored under oldKey before the change (null for a guest or a new session). */
  oldUser: string | null;
  /** The key the session is stored under after the change. */
  newKey: StorageKey;
  /** The user after the change. */
  newUser: string | null;
  /** Whether the commit stores a session under newKey (a logout keeping nothing stores none). */
  stored: boolean;
  /** What started the session over in this request, in order (login, logout, reset); empty when nothing did. */
  restarts: ReadonlyArray<'login' | 'logout' | 'reset'>;
}

/**
 * The events of one session change: `created` for a session stored for the first time; after a
 * rotation, `login` (the new user, the new device handle), `logout` or `reset` (the user before, the
 * old device handle). A rotation's new handle is the same browser session: it gets no `created`.
 *
 * @example
 * changeEvents({ oldKey: guestKey, oldUser: null, newKey, newUser: 'alice', stored: true, restarts: ['login'] });
 * // [{ type: 'login', user: 'alice', key: newKey }]
 */
export function changeEvents(change: SessionChange): EventDraft[] {
  const drafts: EventDraft[] = [];
  if (change.oldKey === null && change.stored) drafts.push({ type: 'created', user: change.newUser, key: change.newKey });
  const last = change.restarts[change.restarts.length - 1];
  if (last === undefined) return drafts;
  if (last === 'login') {
    if (change.stored) drafts.push({ type: 'login', user: change.newUser, key: change.newKey });
  } else if (change.oldKey !== null) {
    drafts.push({ type: last, user: change.oldUser, key: change.oldKey });
  }
  return drafts;
}

/**
 * `ended` (or, for the cleanup, `expired`) events of removed sessions; `user` as the store keeps it
 * (GUEST_USER for a guest).
 *
 * @example
 * removalEvents([{ key, user: 'alice' }], 'ended', 'kill'); // [{ type: 'ended', reason: 'kill', user: 'alice', key }]
 */
export function removalEvents(
  removed: ReadonlyArray<{ key: StorageKey; user: string | null }>,
  type: 'ended' | 'expired',
  reason?: EndReason,
): EventDraft[] {
  return removed.map(({ key, user }) => {
    const draft: EventDraft = { type, user: user === GUEST_USER ? null : user, key };
    if (reason !== undefined) draft.reason = reason;
    return draft;
  });
}
