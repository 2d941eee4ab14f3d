import { KeyedLock } from '../../../lib/store/keyedLock';

/** Requests of one session on one instance queue instead of contending in the database. */
describe('keyed lock', () => {
  function gate() {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    return { open, opened };
  }
  const tick = () => new Promise((r) => setImmediate(r));

  test('tasks of one key run one at a time in order, also after a failed one; other keys do not wait', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const a = gate();
    const first = lock.run('k', async () => {
      log.push('a start');
      await a.opened;
      log.push('a end');
      throw new Error('a failed');
    });
    const second = lock.run('k', async () => {
      log.push('b');
      return 'b';
    });
    const other = lock.run('j', async () => {
      log.push('j');
      return 'j';
    });
    await other;
    await tick();
    expect(log).toEqual(['a start', 'j']);
    a.open();
    await expect(first).rejects.toThrow('a failed');
    expect(await second).toBe('b');
    expect(log).toEqual(['a start', 'j', 'a end', 'b']);
  });

  test('a task queued while an earlier one of the same key still waits its turn runs after it', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const a = gate();
    const b = gate();
    const ta = lock.run('k', async () => {
      await a.opened;
      log.push('a');
    });
    const tb = lock.run('k', async () => {
      log.push('b start');
      await b.opened;
      log.push('b end');
    });
    a.open();
    await ta;
    await tick();
    // a is done and b runs: a third task must still wait for b.
    const tc = lock.run('k', async () => {
      log.push('c');
    });
    await tick();
    expect(log).toEqual(['a', 'b start']);
    b.open();
    await Promise.all([tb, tc]);
    expect(log).toEqual(['a', 'b start', 'b end', 'c']);
  });

  test('a key is held only while a task of it is queued or running, also when tasks fail', async () => {
    const lock = new KeyedLock();
    const a = gate();
    const ta = lock.run('k', async () => {
      await a.opened;
      throw new Error('a failed');
    });
    const tb = lock.run('k', async () => 'b');
    expect(lock.size).toBe(1);
    a.open();
    await expect(ta).rejects.toThrow('a failed');
    // b is still queued behind a: the entry stays for it.
    expect(lock.size).toBe(1);
    expect(await tb).toBe('b');
    expect(lock.size).toBe(0);
    await lock.run('j', async () => 'j');
    await expect(lock.run('j', async () => Promise.reject(new Error('j failed')))).rejects.toThrow('j failed');
    expect(lock.size).toBe(0);
  });
});
