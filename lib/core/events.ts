import { MAX_COMMIT_MUTATIONS } from './limits';

// A leaf module (the store interface imports it): the shapes only; sessionEvents.ts builds them.

/** What happened to a session (docs/events.md). */
export type SessionEventType = 'created' | 'login' | 'logout' | 'reset' | 'ended' | 'expired';

/** Why an `ended` session was ended: a kill message, the device routes, "sign out everywhere else", the per-user cap, an admin route. */
export type EndReason = 'kill' | 'device' | 'logout_others' | 'cap' | 'admin';

/**
 * One session event as it is published (the JSON body of the Pub/Sub message). It names the session
 * by its device handle only: never its id, storage key or security keys.
 */
export interface SessionEvent {
  /** Unique per event and stable across redeliveries: subscribers de-duplicate by it. */
  id: string;
  type: SessionEventType;
  /** Only on `ended`. */
  reason?: EndReason;
  /** The session's user; null for a guest session. */
  user: string | null;
  /** The session's device handle (the `id` of the device list). */
  device: string;
  /** When the change was committed, ISO 8601. */
  time: string;
}

/** An event before it has an id and a time: what a change produces. */
export interface EventDraft {
  type: SessionEventType;
  reason?: EndReason;
  user: string | null;
  /** The storage key of the session (never published: the event carries its device handle). */
  key: string;
}

/**
 * The events of one commit, stored in that same commit (the outbox) and deleted once published.
 * One record per commit, so it costs one more mutation of the 500 a commit may hold.
 */
export interface OutboxRecord {
  /** 22 base64url characters (128 random bits); the record's storage name and the prefix of its events' ids. */
  id: string;
  /** When it was written, ms since the epoch (the relay leaves fresh records to the request that wrote them). */
  createdAt: number;
  events: SessionEvent[];
}

/** Most events one record holds: one commit deletes at most this many sessions next to its record. */
export const MAX_OUTBOX_EVENTS = MAX_COMMIT_MUTATIONS - 1;

/**
 * What the session logic hands each committed record to: publishes it and deletes it from the
 * outbox (EventRelay). Must not throw: what it fails to publish stays in the outbox for a relay.
 */
export interface EventSink {
  afterCommit(record: OutboxRecord): Promise<void>;
}
