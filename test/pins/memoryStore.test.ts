import { MemorySessionStore } from '../../shared/memoryStore';
import { emptyData } from '../../shared/json';
import type { StoredSession } from '../../shared/store';
import { stored } from '../support/seed';

const T0 = Date.UTC(2026, 0, 1);
const put = (key: string, session: StoredSession) => ({ writes: { put: [{ key, session }], delete: [] }, result: undefined });

/** The memory store (npm start, fast tests) at the boundaries the contract suite does not pin. */
describe('memory store', () => {
  test('a session expiring exactly at the cut-off is not expired yet; one millisecond earlier it is', async () => {
    const store = new MemorySessionStore();
    await store.update(null, () => put('at', stored({ expiresAt: T0 })));
    await store.update(null, () => put('before', stored({ expiresAt: T0 - 1 })));
    expect((await store.findKeys({ kind: 'expired', before: T0 }, 10)).keys).toEqual(['before']);
  });

  test('a kill takes sessions created exactly at the issue time; the guest name selects guests only', async () => {
    const store = new MemorySessionStore();
    await store.update(null, () => put('at', stored({ user: 'u', createdAt: T0 })));
    await store.update(null, () => put('after', stored({ user: 'u', createdAt: T0 + 1 })));
    await store.update(null, () => put('guest', stored({ user: null, createdAt: T0 })));
    await store.update(null, () => put('other', stored({ user: 'v', createdAt: T0 })));
    expect((await store.findKeys({ kind: 'user', user: 'u', createdAtOrBefore: T0 }, 10)).keys).toEqual(['at']);
    expect((await store.findKeys({ kind: 'user', user: '__guest__', createdAtOrBefore: T0 }, 10)).keys).toEqual(['guest']);
    expect((await store.findKeys({ kind: 'user', user: null, createdAtOrBefore: T0 }, 10)).keys).toEqual(['at', 'guest', 'other']);
  });

  test('pages hold at most `limit` keys; a full page carries a cursor, the last page none', async () => {
    const store = new MemorySessionStore();
    for (const k of ['a', 'b', 'c', 'd', 'e']) await store.update(null, () => put(k, stored({ expiresAt: T0 - 1 })));
    const p1 = await store.findKeys({ kind: 'expired', before: T0 }, 2);
    expect(p1).toEqual({ keys: ['a', 'b'], cursor: 'b' });
    const p2 = await store.findKeys({ kind: 'expired', before: T0 }, 2, p1.cursor);
    expect(p2).toEqual({ keys: ['c', 'd'], cursor: 'd' });
    expect(await store.findKeys({ kind: 'expired', before: T0 }, 2, p2.cursor)).toEqual({ keys: ['e'] });
  });

  test('an insert that collides writes none of its sessions; an update may put and delete the same key', async () => {
    const store = new MemorySessionStore();
    await store.update(null, () => put('taken', stored()));
    await expect(
      store.update(null, () => ({ writes: { put: [{ key: 'fresh', session: stored() }, { key: 'taken', session: stored({ user: 'x' }) }], delete: [] }, result: 0 })),
    ).rejects.toThrow('session key already exists');
    expect(await store.get('fresh')).toBeNull();
    expect((await store.get('taken'))!.user).toBeNull();
    await store.update('taken', () => ({ writes: { put: [{ key: 'taken', session: stored({ user: 'new' }) }], delete: ['taken'] }, result: 0 }));
    expect((await store.get('taken'))!.user).toBe('new');
    expect(store.size).toBe(1);
  });

  test('what goes in and comes out are copies: changing them later changes nothing stored', async () => {
    const store = new MemorySessionStore();
    const s = stored({ data: Object.assign(emptyData(), { a: { b: 1 } }) });
    await store.update(null, () => put('k', s));
    (s.data.a as { b: number }).b = 2;
    const back = await store.get('k');
    expect(back!.data.a).toEqual({ b: 1 });
    (back!.data.a as { b: number }).b = 3;
    await store.update('k', (current) => {
      (current!.data.a as { b: number }).b = 4;
      return { writes: null, result: 0 };
    });
    expect((await store.get('k'))!.data.a).toEqual({ b: 1 });
  });

  test('a commit of exactly 500 keys is accepted, 501 refused', async () => {
    const store = new MemorySessionStore();
    await store.update(null, () => put('k0', stored()));
    await store.deleteMany(Array.from({ length: 500 }, (_, i) => `k${i}`));
    expect(await store.get('k0')).toBeNull();
    await expect(store.deleteMany(Array.from({ length: 501 }, (_, i) => `k${i}`))).rejects.toThrow(new RangeError('at most 500 keys per commit'));
  });
});
