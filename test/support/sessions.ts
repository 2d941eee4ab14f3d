import { MemorySessionStore } from '../../lib/store/memoryStore';
import type { Decision, StorageKey, StoredSession } from '../../lib/store/sessionStore';
import { cookieFrom, FakeClock, manager, settings } from './fixtures';

/**
 * The memory store with every call counted: the session logic must not call it more than needed,
 * and "stays unwritten" is a fact, not a guess. `writes` counts the updates whose decision puts or
 * deletes something.
 */
export class CountingStore extends MemorySessionStore {
  gets = 0;
  updates = 0;
  writes = 0;
  override async get(key: StorageKey): Promise<StoredSession | null> {
    this.gets++;
    return super.get(key);
  }
  override async update<T>(key: StorageKey | null, decide: (c: StoredSession | null) => Decision<T>): Promise<T> {
    this.updates++;
    return super.update(key, (current) => {
      const d = decide(current);
      if (d.writes && (d.writes.put.length > 0 || d.writes.delete.length > 0)) this.writes++;
      return d;
    });
  }
}

/** A session manager on a counting memory store and a fake clock, with the test settings changed by `overrides`. */
export function setup(overrides: Parameters<typeof settings>[0] = {}) {
  const store = new CountingStore();
  const clock = new FakeClock();
  const m = manager(store, clock, settings(overrides));
  return { store, clock, m };
}

/** A new session holding `data`, saved: its cookie, the save's outcome and the session. */
export async function started(m: ReturnType<typeof setup>['m'], data: Record<string, string | number> = { a: 1 }) {
  const s = await m.load(undefined);
  s.merge(data);
  const out = await m.save(s);
  return { cookie: cookieFrom(out.setCookie), out, session: s };
}
