/**
 * Runs tasks one at a time per key within this process. Requests of one session that reach the
 * same instance queue here instead of contending inside the database, where every lost race
 * costs a transaction abort and a retry. A failed task does not stop the ones queued after it.
 *
 * @example
 * const lock = new KeyedLock();
 * await lock.run(storageKey, () => transact(storageKey)); // waits for earlier tasks on storageKey only
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Keys with a task queued or running; the others must not stay in the map (one per session ever served). */
  get size(): number {
    return this.#tails.size;
  }

  /**
   * Runs `task` once every task queued before it under `key` has settled; resolves or rejects as
   * `task` does.
   *
   * @example
   * const result = await lock.run('a1b2…', async () => commitChange());
   */
  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const current = previous.then(task, task);
    const tail = current.catch(() => undefined);
    this.#tails.set(key, tail);
    try {
      return await current;
    } finally {
      // Only the last task in the queue removes the entry, so the map does not grow.
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
