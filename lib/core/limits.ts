/**
 * The numbers and names the whole service agrees on, in one leaf module that imports nothing: a
 * store, a job, a route or a tool that needs one of them imports it from here, never from the
 * module that happens to use it most.
 */

/** The user id stored for sessions without a user, in both formats (ViUR's `Session.GUEST_USER`); a kill of `GUEST_USER` ends every guest session. */
export const GUEST_USER = '__guest__';

/** Longest user id in UTF-8 bytes (it is an indexed Datastore string, limited to 1,500). */
export const MAX_USER_BYTES = 500;

/** Datastore's limit on mutations in one commit: every batch of deletes or writes stays within it. */
export const MAX_COMMIT_MUTATIONS = 500;

/**
 * How long the entity of a session rotated away by login, logout or reset stays as a tombstone.
 * Requests still carrying the old id (sent before the browser saw the new cookie) get
 * session_ended and no Set-Cookie meanwhile, so they cannot undo the rotation in the browser.
 * A minute and a half covers requests in flight and retried; its expiresAt lets the cleanup and the
 * TTL policy remove it like any expired session.
 */
export const TOMBSTONE_SECONDS = 90;

/**
 * When the cookie name appears more than once (a sibling subdomain may plant one), at most this many
 * well-formed values are looked up, each costing one lookup; the first naming a live session wins.
 */
export const MAX_COOKIE_CANDIDATES = 3;

/** Longest data key in UTF-8 bytes; Datastore allows 1,500 for a property name, we keep well under. */
export const MAX_KEY_BYTES = 256;

/** Deepest nesting of a stored value. */
export const MAX_DEPTH = 64;

/**
 * Most JSON values in all the data of a session: every object, array, string, number, boolean and
 * null at any depth, each key's own value included (keys themselves are not counted). Parsing,
 * holding and serialising data costs per value, not per byte: `[[[]]]` is 7 bytes for three values,
 * about 20 times its text in heap once parsed. This bound keeps the cost of the densest data within
 * a few times that of flat data of the same size. As many as SESSION_MAX_DATA_KEYS's own maximum, so
 * every key count it allows stays reachable with scalar values.
 */
export const MAX_DATA_NODES = 100_000;

/** Most sessions one device listing returns. */
export const MAX_LISTED_SESSIONS = 100;

/** Longest User-Agent kept, in characters (code points, so a surrogate pair is never split). */
export const MAX_USER_AGENT_CHARS = 256;

/**
 * Sessions a device listing looks at, the most lately expiring live ones (heads are small; data is
 * never loaded); a handle of a session stored before handles were is looked for among the same.
 */
export const LIST_SCAN = 1000;

/** Live sessions "sign out everywhere else" and the session cap look at, at most, for one user. */
export const FULL_SCAN = 20_000;

/** Heads one query of a user's sessions reads (a page of a listing). */
export const HEAD_PAGE = 500;

/**
 * For the session cap, a sign-in counts as use for this long after it: a login's new session
 * outranks every session signed in before it, however busy, for far longer than a login request
 * can take, so the cap a login applies never ends its own session because another was used
 * meanwhile. Only a later sign-in of the same user can outrank it.
 */
export const SIGN_IN_PRECEDENCE_MS = 60_000;

/** Most users one kill message may name; larger lists are split by the publisher's caller. */
export const MAX_USERS_PER_MESSAGE = 1000;

/**
 * A chain of follow-ups ends here even if it never finishes: at the default kill budget this is
 * weeks of deleting, so reaching it means something is wrong, and an endless chain would hide it.
 */
export const MAX_CONTINUATIONS = 10_000;

/**
 * Well above the largest valid kill message of plain ids (1,000 users of 500 bytes); publishers
 * refuse a message whose JSON text is longer (ids full of escaped characters), the consumer too.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * Room for what a Pub/Sub push (or an Eventarc CloudEvent) puts around a message's base64 data:
 * ids, publish time, subscription name, attributes. Our messages' envelopes are well under 1 KiB.
 */
export const PUSH_ENVELOPE_BYTES = 64 * 1024;

/**
 * The largest request that delivers a kill message: MAX_MESSAGE_BYTES base64-encoded (4 bytes for
 * every 3) inside the push envelope. The kill function must read bodies this large, or a message
 * the API accepted is refused on every delivery.
 */
export const MAX_PUSH_BYTES = 4 * Math.ceil(MAX_MESSAGE_BYTES / 3) + PUSH_ENVELOPE_BYTES;

/**
 * How long a request body may take to arrive, counted from the end of its headers; past it the
 * request is answered 408 and its connection closed. functions-framework turns socket timeouts off
 * (Node's own request timeout is 300 s), so without it a body trickling in a byte at a time holds
 * one of an instance's concurrency slots for as long as its client likes. 10 s carries the largest
 * body there is (MAX_PUSH_BYTES, 1.4 MB, from Pub/Sub inside Google) at 1.2 Mbit/s, and the largest
 * session write (768 KiB by default) from a browser at 0.7 Mbit/s; most writes are a few KB.
 */
export const BODY_TIMEOUT_MS = 10_000;

/** A Pub/Sub topic id (what SESSION_KILL_TOPIC and the CLI's --topic accept). */
export const TOPIC_ID_PATTERN = /^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$/;
