import { createHash } from 'node:crypto';
import { emptyData } from '../../lib/core/json';
import type { KeyPage, SessionSelector, SessionStore, StorageKey, StoredSession } from '../../lib/store/sessionStore';

/** A stored session for seeding; the key is derived from a readable label so tests can name sessions. */
export function stored(overrides: Partial<StoredSession> = {}): StoredSession {
  const t = overrides.createdAt ?? Date.UTC(2026, 0, 1);
  return {
    data: emptyData(),
    user: null,
    lastSeen: t,
    createdAt: t,
    expiresAt: t + 3600_000,
    staticKeyDigest: 'ab'.repeat(32),
    securityKeyDigests: [],
    userAgent: null,
    ...overrides,
  };
}

export function keyOf(label: string): StorageKey {
  return createHash('sha256').update(label).digest('hex');
}

/** Inserts the sessions in commits of up to 500 (one insert-only commit each, as the store does for new sessions). */
export async function seed(store: SessionStore, sessions: Array<[label: string, session: StoredSession]>): Promise<StorageKey[]> {
  const keys: StorageKey[] = [];
  for (let i = 0; i < sessions.length; i += 500) {
    const put = sessions.slice(i, i + 500).map(([label, session]) => ({ key: keyOf(label), session }));
    await store.update(null, () => ({ writes: { put, delete: [] }, result: undefined }));
    keys.push(...put.map((p) => p.key));
  }
  return keys;
}

/** Every key the selector matches (bounded: fails rather than loop forever). */
export async function matching(store: SessionStore, selector: SessionSelector): Promise<StorageKey[]> {
  const keys: StorageKey[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 10_000; i++) {
    const page: KeyPage = await store.findKeys(selector, 500, cursor);
    keys.push(...page.keys);
    if (!page.cursor) return keys.sort();
    cursor = page.cursor;
  }
  throw new Error('too many pages');
}

/** Which of these keys still exist. */
export async function existing(store: SessionStore, keys: StorageKey[]): Promise<StorageKey[]> {
  const found = await Promise.all(keys.map(async (k) => ((await store.get(k)) ? k : null)));
  return found.filter((k): k is StorageKey => k !== null);
}

/** Polls `condition` until it holds; a bounded loop that fails with `what` when it never does. */
export async function eventually(
  what: string,
  condition: () => Promise<boolean> | boolean,
  timeoutMs = 60_000,
  intervalMs = 200,
): Promise<void> {
  const attempts = Math.ceil(timeoutMs / intervalMs);
  for (let i = 0; i < attempts; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/**
 * A store that passes every call through to `inner` and lets a test observe calls and inject a
 * failure or a clock step (our own interface, not a Google client: the real store underneath runs).
 */
export class ObservedStore implements SessionStore {
  readonly findLimits: number[] = [];
  readonly deleteSizes: number[] = [];
  inFlight = 0;
  maxInFlight = 0;
  beforeFind: () => void = () => {};
  beforeDelete: (call: number) => void = () => {};

  constructor(private readonly inner: SessionStore) {}

  get: SessionStore['get'] = (key) => this.inner.get(key);
  /** Deletes in each update's commit (the store's limit is 500 mutations per commit). */
  readonly commitDeletes: number[] = [];
  update: SessionStore['update'] = (key, decide) =>
    this.inner.update(key, (current) => {
      const decision = decide(current);
      if (decision.writes) this.commitDeletes.push(decision.writes.delete.length);
      return decision;
    });
  listUserSessions: SessionStore['listUserSessions'] = (user, expiresAfter, limit, cursor) =>
    this.inner.listUserSessions(user, expiresAfter, limit, cursor);
  findUserSession: SessionStore['findUserSession'] = (user, handle, expiresAfter) => this.inner.findUserSession(user, handle, expiresAfter);
  readonly endSizes: number[] = [];
  endSessions: SessionStore['endSessions'] = (keys) => {
    this.endSizes.push(keys.length);
    return this.inner.endSessions(keys);
  };

  async findKeys(selector: SessionSelector, limit: number, cursor?: string): Promise<KeyPage> {
    this.findLimits.push(limit);
    this.beforeFind();
    return this.inner.findKeys(selector, limit, cursor);
  }

  async deleteMany(keys: StorageKey[]): Promise<void> {
    this.deleteSizes.push(keys.length);
    this.beforeDelete(this.deleteSizes.length);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.inner.deleteMany(keys);
    } finally {
      this.inFlight--;
    }
  }
}
