import { MemorySessionStore } from '../../../lib/store/memoryStore';
import { emptyData } from '../../../lib/core/json';
import type { StoredSession } from '../../../lib/store/sessionStore';
import { stored } from '../../support/seed';

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
      store.update(null, () => ({
        writes: {
          put: [
            { key: 'fresh', session: stored() },
            { key: 'taken', session: stored({ user: 'x' }) },
          ],
          delete: [],
        },
        result: 0,
      })),
    ).rejects.toThrow('session key already exists');
    expect(await store.get('fresh')).toBeNull();
    expect((await store.get('taken'))!.user).toBeNull();
    await store.update('taken', () => ({
      writes: { put: [{ key: 'taken', session: stored({ user: 'new' }) }], delete: ['taken'] },
      result: 0,
    }));
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
    await expect(store.deleteMany(Array.from({ length: 501 }, (_, i) => `k${i}`))).rejects.toThrow(
      new RangeError('at most 500 keys per commit'),
    );
  });
});

describe('memory store: listing and ending the sessions of a user', () => {
  test("only that user's sessions (guests under the guest name), heads only, ordered, paged by cursor", async () => {
    const store = new MemorySessionStore();
    const data = Object.assign(emptyData(), { secret: 'x' });
    await store.update(null, () =>
      put('b', stored({ user: 'u', lastSeen: T0 + 1, createdAt: T0, expiresAt: T0 + 9, userAgent: 'UA', data })),
    );
    await store.update(null, () => put('a', stored({ user: 'u', createdAt: T0, endedAt: T0 + 5 })));
    await store.update(null, () => put('c', stored({ user: 'u', createdAt: T0 })));
    await store.update(null, () => put('g', stored({ user: null, createdAt: T0 })));
    await store.update(null, () => put('v', stored({ user: 'v', createdAt: T0 })));
    await store.update(null, () => put('d', stored({ user: 'u', createdAt: T0, expiresAt: T0 })));
    // Latest expiresAt first, then by key; `d` expires at T0, not after it.
    const p1 = await store.listUserSessions('u', T0, 2);
    expect(p1.cursor).toBeDefined();
    expect(p1.sessions.map((s) => s.key)).toEqual(['a', 'c']);
    expect(p1.sessions[0].head.endedAt).toBe(T0 + 5);
    const p2 = await store.listUserSessions('u', T0, 2, p1.cursor);
    expect(p2).toEqual({ sessions: [{ key: 'b', head: expect.objectContaining({ user: 'u' }) }] });
    // A head, never the data: no key beyond what a device listing shows.
    expect(p2.sessions[0].head).toStrictEqual({ user: 'u', lastSeen: T0 + 1, createdAt: T0, expiresAt: T0 + 9, userAgent: 'UA' });
    expect((await store.listUserSessions('u', T0 + 9, 10)).sessions.map((s) => s.key)).toEqual(['a', 'c']);
    expect((await store.listUserSessions('__guest__', T0, 10)).sessions.map((s) => s.key)).toEqual(['g']);
    expect(await store.listUserSessions('nobody', T0, 10)).toEqual({ sessions: [] });
  });

  test('endSessions deletes exactly those keys, with the same 500-key bound as a commit', async () => {
    const store = new MemorySessionStore();
    for (const k of ['a', 'b', 'c']) await store.update(null, () => put(k, stored()));
    await store.endSessions(['a', 'c', 'absent']);
    expect([await store.get('a'), await store.get('c')]).toEqual([null, null]);
    expect(await store.get('b')).not.toBeNull();
    await expect(store.endSessions(Array.from({ length: 501 }, (_, i) => `k${i}`))).rejects.toThrow(RangeError);
    expect(await store.get('b')).not.toBeNull();
  });

  test('an update without writes changes nothing; a delete in an update removes the session', async () => {
    const store = new MemorySessionStore();
    await store.update(null, () => put('a', stored({ user: 'u' })));
    expect(await store.update('a', () => ({ writes: null, result: 'r' }))).toBe('r');
    expect((await store.get('a'))!.user).toBe('u');
    await store.update('a', () => ({ writes: { put: [], delete: ['a'] }, result: 0 }));
    expect(await store.get('a')).toBeNull();
    expect(store.size).toBe(0);
  });
});
