import { cookieFrom, countRpcs, datastore, datastoreStore, FakeClock, manager, uniqueNamespace } from '../support/fixtures';
import { systemClock } from '../../lib/core/clock';

/** The session library on the real Datastore emulator: round trips, concurrency, values. */
describe('sessions on Datastore', () => {
  const rpc = countRpcs();
  afterAll(() => rpc.restore());

  async function fresh(data: Record<string, number> = { a: 1 }) {
    const store = datastoreStore(uniqueNamespace('sess'));
    const m = manager(store, systemClock);
    const s = await m.load(undefined);
    s.merge(data);
    const out = await m.save(s);
    return { m, store, cookie: cookieFrom(out.setCookie) };
  }

  test('round trips: read = 1 lookup; change = 1 lookup + 1 commit (+ the emulator-only beginTransaction)', async () => {
    const { m, cookie } = await fresh();
    rpc.reset();
    const s = await m.load(cookie);
    await m.save(s);
    expect(rpc.counts).toEqual({ lookup: 1 });
    rpc.reset();
    await m.withSession(cookie, (x) => x.set('b', 2));
    expect(rpc.counts).toEqual({ beginTransaction: 1, lookup: 1, commit: 1 });
    rpc.reset();
    const n = await m.load(undefined);
    n.set('x', 1);
    await m.save(n);
    expect(rpc.counts).toEqual({ commit: 1 });
  });

  test('20 concurrent saves of different keys keep all 20', async () => {
    const { m, cookie } = await fresh();
    await Promise.all(Array.from({ length: 20 }, (_, i) => m.withSession(cookie, (s) => s.set(`k${i}`, i))));
    const s = await m.load(cookie);
    for (let i = 0; i < 20; i++) expect(s.get(`k${i}`)).toBe(i);
  });

  test('20 concurrent load/save requests changing different keys keep all 20 (save merges in a transaction)', async () => {
    const { m, cookie } = await fresh();
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const s = await m.load(cookie);
        s.set(`k${i}`, i);
        await m.save(s);
      }),
    );
    expect(Object.keys((await m.load(cookie)).toObject())).toHaveLength(21);
  });

  test('20 concurrent validations of one one-time key succeed exactly once', async () => {
    const { m, cookie } = await fresh();
    const { result: key } = await m.withSession(cookie, (s) => s.getSecurityKey());
    const results = await Promise.all(Array.from({ length: 20 }, () => m.withSession(cookie, (s) => s.validateSecurityKey(key))));
    expect(results.filter((r) => r.result)).toHaveLength(1);
  });

  test('across separate instances (own clients, no shared in-process lock) a key is still accepted once', async () => {
    const ns = uniqueNamespace('inst');
    const instances = [0, 1, 2].map(() => manager(datastoreStore(ns, datastore()), systemClock));
    const s = await instances[0].load(undefined);
    const key = s.getSecurityKey();
    const cookie = cookieFrom((await instances[0].save(s)).setCookie);
    const results = await Promise.allSettled(instances.map((m) => m.withSession(cookie, (x) => x.validateSecurityKey(key))));
    const accepted = results.filter((r) => r.status === 'fulfilled' && r.value.result);
    expect(accepted).toHaveLength(1);
  });

  test('values round-trip exactly through the session', async () => {
    const store = datastoreStore(uniqueNamespace('vals'));
    const m = manager(store, new FakeClock(Date.now()));
    const value = { nested: { list: [1, 'two', null, true, [3, [4]], { five: 5.5 }] }, unicode: 'Ωμέγα ✓ 🎉', big: 2 ** 60, neg: -0.125 };
    const s = await m.load(undefined);
    s.set('v', value);
    s.set('a.b[0]', 'dots and brackets');
    const cookie = cookieFrom((await m.save(s)).setCookie);
    const back = await m.load(cookie);
    expect(back.get('v')).toEqual(value);
    expect(back.get('a.b[0]')).toBe('dots and brackets');
  });
});
