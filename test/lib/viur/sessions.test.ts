import type { Datastore } from '@google-cloud/datastore';
import { InvalidKeyError, KeyNotFoundError } from '../../../lib/core/errors';
import type { RawEntity } from '../../../lib/viur/entity';
import { createViurSessions } from '../../../lib/viur/runtime';
import { ViurCsrfError, ViurNotLoggedInError, type ViurSessions } from '../../../lib/viur/sessions';
import { countRpcs, datastore, FakeClock, testConfig, uniqueNamespace } from '../../support/fixtures';
import {
  cookieValue,
  EVERY_TYPE_JSON,
  everyType,
  KEY_KIND,
  keyEntity,
  keyValue,
  LONG_TEXT,
  rawEntity,
  rawKey,
  sessionEntity,
  shape,
  shapeAll,
  USER_STRING,
  userEntity,
  VIUR_KIND,
  writeRaw,
} from '../../support/viurSessionFixtures';

const LIFETIME = 3600;
let ds: Datastore;
let ns: string;
let clock: FakeClock;
let viur: ViurSessions;

const nowSeconds = () => clock.now() / 1000;
const header = (cookie: string) => `viur_cookie_session-test=${cookie}`;
const sessionKey = (cookie: string) => rawKey(VIUR_KIND, cookie, ns);
const stored = (cookie: string) => rawEntity(ds, sessionKey(cookie));
const storedKey = (key: string) => rawEntity(ds, rawKey(KEY_KIND, key, ns));

beforeAll(() => {
  ds = datastore();
});
beforeEach(() => {
  ns = uniqueNamespace('viur');
  clock = new FakeClock();
  viur = createViurSessions(testConfig({ SESSION_FORMAT: 'viur', SESSION_NAMESPACE: ns, SESSION_LIFETIME_SECONDS: String(LIFETIME) }), {
    clock,
    datastore: ds,
  });
});

/** A live session written as ViUR writes it; returns its cookie and static key. */
async function seed(o: { data?: RawEntity['properties']; user?: string; ageSeconds?: number; legacyStaticKey?: boolean } = {}) {
  const cookie = cookieValue();
  const staticKey = keyValue();
  await writeRaw(ds, [
    sessionEntity({
      namespace: ns,
      cookie,
      data: o.data,
      lastseen: nowSeconds() - (o.ageSeconds ?? 10),
      staticKey,
      user: o.user,
      legacyStaticKey: o.legacyStaticKey,
    }),
  ]);
  return { cookie, staticKey };
}

describe('reading a session ViUR wrote', () => {
  test('a guest session with values of every type reads as {user: null, data} in the documented JSON forms, and nothing is written', async () => {
    const { cookie } = await seed({ data: everyType(ns) });
    const before = await stored(cookie);
    const { view, outcome } = await viur.read(header(cookie));
    expect(view).toEqual({
      user: null,
      data: { ...EVERY_TYPE_JSON, ref: { $key: { path: [{ kind: 'order', id: '42' }], namespace: ns } } },
    });
    expect(outcome).toEqual({ setCookie: null, staticSecurityKey: null });
    expect(await stored(cookie)).toEqual(before);
  });

  test('a logged-in session shows ViUR`s user string and never the user entity in data (it holds the password hash)', async () => {
    const { cookie } = await seed({ data: { user: userEntity(ns), language: { stringValue: 'de' } }, user: USER_STRING });
    const { view } = await viur.read(header(cookie));
    expect(view).toEqual({ user: USER_STRING, data: { language: 'de' } });
    expect(JSON.stringify(view)).not.toContain('secret');
  });

  test('a session past its lifetime reads as an empty guest session, its cookie is cleared and nothing is written', async () => {
    const { cookie } = await seed({ data: { language: { stringValue: 'de' } }, ageSeconds: LIFETIME + 1 });
    const before = await stored(cookie);
    const { view, outcome } = await viur.read(header(cookie));
    expect(view).toEqual({ user: null, data: {} });
    expect(outcome.setCookie).toBe('viur_cookie_session-test=;Path=/;HttpOnly;SameSite=lax;Secure;Max-Age=0');
    expect(await stored(cookie)).toEqual(before);
  });

  test('a read more than 5 minutes after lastseen refreshes lastseen (ViUR`s load), keeps every value byte for byte and writes only ViUR`s four properties', async () => {
    const { cookie, staticKey } = await seed({
      data: { ...everyType(ns), user: userEntity(ns) },
      user: USER_STRING,
      ageSeconds: 301,
      legacyStaticKey: true,
    });
    const before = (await stored(cookie))!;
    const { outcome } = await viur.read(header(cookie));
    expect(outcome.setCookie).toBe(`viur_cookie_session-test=${cookie};Path=/;HttpOnly;SameSite=lax;Secure;Max-Age=${LIFETIME}`);
    const after = (await stored(cookie))!;
    expect(Object.keys(after.properties).sort()).toEqual(['data', 'lastseen', 'static_security_key', 'user']);
    expect(shape(after.properties.data)).toEqual(shape(before.properties.data));
    expect(shape(after.properties.lastseen)).toEqual({ type: 'doubleValue', flag: false, value: nowSeconds() });
    expect(shape(after.properties.static_security_key)).toEqual({ type: 'stringValue', flag: false, value: staticKey });
    expect(shape(after.properties.user)).toEqual({ type: 'stringValue', flag: false, value: USER_STRING });
  });

  test('a read within 5 minutes writes nothing', async () => {
    const { cookie } = await seed({ ageSeconds: 299 });
    const before = await stored(cookie);
    await viur.read(header(cookie));
    expect(await stored(cookie)).toEqual(before);
  });

  test('the static key is checked against static_security_key, or staticSecurityKey of older apps', async () => {
    const a = await seed();
    const b = await seed({ legacyStaticKey: true });
    expect(await viur.validateStaticKey(header(a.cookie), a.staticKey)).toBe(true);
    expect(await viur.validateStaticKey(header(a.cookie), b.staticKey)).toBe(false);
    expect(await viur.validateStaticKey(header(b.cookie), b.staticKey)).toBe(true);
    expect(await viur.validateStaticKey(undefined, a.staticKey)).toBe(false);
  });
});

describe('writing', () => {
  test('a value set with the static key is stored as ViUR stores it; every other value stays byte for byte', async () => {
    const { cookie, staticKey } = await seed({ data: { ...everyType(ns), user: userEntity(ns) }, user: USER_STRING });
    const before = (await stored(cookie))!;
    await viur.change(header(cookie), { staticKeys: [staticKey] }, (d) => {
      d.set('fresh', { text: LONG_TEXT, n: 1.5, list: [1, 'x'] });
      d.set('count', 8);
    });
    const after = (await stored(cookie))!;
    expect(Object.keys(after.properties).sort()).toEqual(['data', 'lastseen', 'static_security_key', 'user']);
    expect(after.properties.data.excludeFromIndexes).toBe(true);
    const beforeData = shapeAll(before.properties.data.entityValue!.properties);
    const afterData = shapeAll(after.properties.data.entityValue!.properties);
    const { fresh, count, ...rest } = afterData;
    const { count: oldCount, ...oldRest } = beforeData;
    expect(rest).toEqual(oldRest);
    expect(oldCount).toEqual({ type: 'integerValue', flag: false, value: '7' });
    expect(count).toEqual({ type: 'integerValue', flag: false, value: '8' });
    expect(fresh).toEqual({
      type: 'entityValue',
      flag: false,
      key: null,
      properties: {
        text: { type: 'stringValue', flag: true, value: LONG_TEXT },
        n: { type: 'doubleValue', flag: false, value: 1.5 },
        list: {
          type: 'arrayValue',
          flag: false,
          values: [
            { type: 'integerValue', flag: false, value: '1' },
            { type: 'stringValue', flag: false, value: 'x' },
          ],
        },
      },
    });
    expect(shape(after.properties.user)).toEqual({ type: 'stringValue', flag: false, value: USER_STRING });
  });

  test('without a valid key nothing is written; the user entity cannot be written or deleted', async () => {
    const { cookie, staticKey } = await seed({ data: { user: userEntity(ns) }, user: USER_STRING });
    const before = await stored(cookie);
    await expect(viur.change(header(cookie), { staticKeys: ['wrong'] }, (d) => d.set('a', 1))).rejects.toBeInstanceOf(ViurCsrfError);
    await expect(viur.change(header(cookie), { staticKeys: [staticKey] }, (d) => d.set('user', 'mallory'))).rejects.toBeInstanceOf(
      InvalidKeyError,
    );
    await expect(viur.change(header(cookie), { staticKeys: [staticKey] }, (d) => d.delete('user'))).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(viur.change(header(cookie), { staticKeys: [staticKey] }, (d) => d.delete('absent'))).rejects.toBeInstanceOf(
      KeyNotFoundError,
    );
    expect(await stored(cookie)).toEqual(before);
  });

  test('a session deleted (killed) before the write is never written again', async () => {
    const { cookie, staticKey } = await seed();
    await new Promise<void>((resolve, reject) =>
      ds.request_(
        {
          client: 'DatastoreClient',
          method: 'commit',
          reqOpts: { mode: 'NON_TRANSACTIONAL', mutations: [{ delete: sessionKey(cookie) }] },
        },
        (e: unknown) => (e ? reject(e) : resolve()),
      ),
    );
    await expect(viur.change(header(cookie), { staticKeys: [staticKey] }, (d) => d.set('a', 1))).rejects.toBeInstanceOf(ViurCsrfError);
    expect(await stored(cookie)).toBeNull();
  });

  test('touch without a cookie creates a guest session as ViUR`s first save does: 42-character cookie, 13-character static key, user __guest__', async () => {
    const { outcome } = await viur.change(undefined, null, (d) => d.touch());
    const cookie = /^viur_cookie_session-test=([A-Za-z0-9]{42});Path=\/;HttpOnly;SameSite=lax;Secure;Max-Age=3600$/.exec(
      outcome.setCookie ?? '',
    )?.[1];
    expect(cookie).toBeDefined();
    expect(outcome.staticSecurityKey).toMatch(/^[A-Za-z0-9]{13}$/);
    const e = (await stored(cookie!))!;
    expect(shapeAll(e.properties)).toEqual({
      data: { type: 'entityValue', flag: true, key: null, properties: {} },
      lastseen: { type: 'doubleValue', flag: false, value: nowSeconds() },
      static_security_key: { type: 'stringValue', flag: false, value: outcome.staticSecurityKey },
      user: { type: 'stringValue', flag: false, value: '__guest__' },
    });
  });
});

describe('one-time keys (viur-securitykey)', () => {
  test('minted keys are bound to the session and expire after the lifetime, stored as securitykey.create stores them; the session is not rewritten', async () => {
    const { cookie } = await seed();
    const before = await stored(cookie);
    const { keys, outcome } = await viur.change(header(cookie), null, () => undefined, { mintKeys: 2 });
    expect(keys).toHaveLength(2);
    // As securitykey.create on a loaded session: only the keys are written.
    expect(await stored(cookie)).toEqual(before);
    expect(outcome.setCookie).toBeNull();
    for (const key of keys) {
      expect(key).toMatch(/^[A-Za-z0-9]{13}$/);
      const e = (await storedKey(key))!;
      expect(shapeAll(e.properties)).toEqual({
        viur_session: { type: 'stringValue', flag: false, value: cookie },
        viur_until: { type: 'timestampValue', flag: false, value: { seconds: String(nowSeconds() + LIFETIME), nanos: 0 } },
      });
    }
  });

  test('a bound live key is valid once and deleted', async () => {
    const { cookie } = await seed();
    const key = keyValue();
    await writeRaw(ds, [keyEntity({ namespace: ns, key, session: cookie, untilMs: clock.now() + 60_000 })]);
    const { keys } = await viur.change(header(cookie), { oneTimeKey: key, staticKeys: [] }, (d) => d.set('a', 1), {
      mintKeys: (_r, consumed) => (consumed ? 1 : 0),
    });
    expect(keys).toHaveLength(1);
    expect(await storedKey(key)).toBeNull();
    await expect(viur.change(header(cookie), { oneTimeKey: key, staticKeys: [] }, (d) => d.set('a', 2))).rejects.toBeInstanceOf(
      ViurCsrfError,
    );
  });

  test.each([
    ['expired', (cookie: string, now: number) => ({ session: cookie, untilMs: now - 1000 })],
    ['bound to another session', (_cookie: string, now: number) => ({ session: cookieValue(), untilMs: now + 60_000 })],
    ['unbound', (_cookie: string, now: number) => ({ session: null, untilMs: now + 60_000 })],
  ])('a key %s is refused, and deleted all the same (ViUR deletes before it checks)', async (_name, make) => {
    const { cookie } = await seed();
    const key = keyValue();
    await writeRaw(ds, [keyEntity({ namespace: ns, key, ...make(cookie, clock.now()) })]);
    const before = await stored(cookie);
    await expect(viur.change(header(cookie), { oneTimeKey: key, staticKeys: [] }, (d) => d.set('a', 1))).rejects.toBeInstanceOf(
      ViurCsrfError,
    );
    expect(await storedKey(key)).toBeNull();
    expect(await stored(cookie)).toEqual(before);
  });
});

describe('logout and reset', () => {
  test('logout keeping a persistent field starts a new guest session with it; the old session and its keys are gone', async () => {
    const { cookie, staticKey } = await seed({
      data: { user: userEntity(ns), language: { stringValue: 'de' }, cart: { integerValue: '3' } },
      user: USER_STRING,
    });
    const bound = keyValue();
    await writeRaw(ds, [keyEntity({ namespace: ns, key: bound, session: cookie, untilMs: clock.now() + 60_000 })]);
    const { result, outcome } = await viur.change(header(cookie), { staticKeys: [staticKey] }, (d) => {
      d.logout(['language']);
      return d.view();
    });
    expect(result).toEqual({ user: null, data: { language: 'de' } });
    const next = /=([A-Za-z0-9]{42});/.exec(outcome.setCookie ?? '')?.[1];
    expect(next).toBeDefined();
    expect(await stored(cookie)).toBeNull();
    expect(await storedKey(bound)).toBeNull();
    const e = (await stored(next!))!;
    expect(shape(e.properties.user)).toEqual({ type: 'stringValue', flag: false, value: '__guest__' });
    expect(Object.keys(e.properties.data.entityValue!.properties)).toEqual(['language']);
  });

  test('logout with nothing to keep deletes the session and writes nothing (ViUR`s clear); a guest cannot log out', async () => {
    const { cookie, staticKey } = await seed({ data: { user: userEntity(ns) }, user: USER_STRING });
    const { outcome } = await viur.change(header(cookie), { staticKeys: [staticKey] }, (d) => d.logout(['language']));
    expect(outcome.setCookie).toContain('Max-Age=0');
    expect(await stored(cookie)).toBeNull();
    const guest = await seed();
    await expect(viur.change(header(guest.cookie), { staticKeys: [guest.staticKey] }, (d) => d.logout([]))).rejects.toBeInstanceOf(
      ViurNotLoggedInError,
    );
  });

  test('reset replaces the session with an empty guest one under a new cookie and static key', async () => {
    const { cookie, staticKey } = await seed({ data: { user: userEntity(ns), language: { stringValue: 'de' } }, user: USER_STRING });
    const { outcome } = await viur.change(header(cookie), { staticKeys: [staticKey] }, (d) => d.reset());
    expect(outcome.staticSecurityKey).toMatch(/^[A-Za-z0-9]{13}$/);
    const next = /=([A-Za-z0-9]{42});/.exec(outcome.setCookie ?? '')![1];
    expect(await stored(cookie)).toBeNull();
    const { view } = await viur.read(header(next));
    expect(view).toEqual({ user: null, data: {} });
  });
});

describe('limits', () => {
  test('data over SESSION_MAX_DATA_BYTES (its JSON form) is 413 too_large and nothing is written', async () => {
    const { cookie, staticKey } = await seed();
    const before = await stored(cookie);
    await expect(
      viur.change(header(cookie), { staticKeys: [staticKey] }, (d) => d.set('big', 'x'.repeat(1_100_000))),
    ).rejects.toMatchObject({
      code: 'too_large',
      status: 413,
    });
    expect(await stored(cookie)).toEqual(before);
  });

  test('more keys than SESSION_MAX_DATA_KEYS is 413 too_many_keys', async () => {
    const small = createViurSessions(testConfig({ SESSION_FORMAT: 'viur', SESSION_NAMESPACE: ns, SESSION_MAX_DATA_KEYS: '2' }), {
      clock,
      datastore: ds,
    });
    const { cookie, staticKey } = await seed();
    await expect(small.change(header(cookie), { staticKeys: [staticKey] }, (d) => d.merge({ a: 1, b: 2, c: 3 }))).rejects.toMatchObject({
      code: 'too_many_keys',
    });
  });
});

describe('round trips', () => {
  test('a read is one lookup; a refresh adds one transaction; a change is one transaction (begin, lookup, commit)', async () => {
    const fresh = await seed();
    const due = await seed({ ageSeconds: 301 });
    const rpcs = countRpcs();
    try {
      await viur.read(header(fresh.cookie));
      expect(rpcs.counts).toEqual({ lookup: 1 });
      rpcs.reset();
      await viur.read(header(due.cookie));
      expect(rpcs.counts).toEqual({ lookup: 2, beginTransaction: 1, commit: 1 });
      rpcs.reset();
      await viur.change(header(fresh.cookie), { staticKeys: [fresh.staticKey] }, (d) => d.set('a', 1));
      expect(rpcs.counts).toEqual({ beginTransaction: 1, lookup: 1, commit: 1 });
    } finally {
      rpcs.restore();
    }
  });
});
