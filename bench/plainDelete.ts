import type { SessionSelector, SessionStore } from '../lib/store/sessionStore';

/**
 * The baseline the kill and cleanup benchmarks measure the engine against: what one would write
 * without it (query a page from the start, delete it, repeat), as ViUR's own iterators do.
 */
export async function plainDeleteLoop(store: SessionStore, selector: SessionSelector): Promise<number> {
  let deleted = 0;
  for (let i = 0; i < 1_000_000; i++) {
    const { keys } = await store.findKeys(selector, 500);
    if (keys.length === 0) break;
    await store.deleteMany(keys);
    deleted += keys.length;
  }
  return deleted;
}
