import type { Datastore } from '@google-cloud/datastore';
import request from 'supertest';
import { startApi, type ApiHarness } from '../../support/api';
import { datastore } from '../../support/fixtures';
import {
  cookieValue,
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

/**
 * sessionApi in viur format (SESSION_FORMAT=viur) through functions-framework, on sessions and
 * keys written in exactly a ViUR 3.8 app's shape; every answer is checked against docs/openapi.yaml.
 */

let api: ApiHarness;
let ds: Datastore;
let ns: string;
const COOKIE = 'viur_cookie_session-test';

beforeAll(async () => {
  api = await startApi({ SESSION_FORMAT: 'viur', SESSION_PERSISTENT_FIELDS_ON_LOGOUT: 'language' });
  ds = datastore();
});
beforeEach(() => {
  ns = api.use().config.namespace!;
});

const http = () => request(api.server);
const stored = (cookie: string) => rawEntity(ds, rawKey(VIUR_KIND, cookie, ns));

async function seed(o: { data?: Parameters<typeof sessionEntity>[0]['data']; user?: string; ageSeconds?: number } = {}) {
  const cookie = cookieValue();
  const staticKey = keyValue();
  await writeRaw(ds, [
    sessionEntity({ namespace: ns, cookie, data: o.data, lastseen: Date.now() / 1000 - (o.ageSeconds ?? 10), staticKey, user: o.user }),
  ]);
  return { cookie, staticKey, header: `${COOKIE}=${cookie}` };
}

describe('sessionApi on a ViUR app`s sessions', () => {
  test('GET /session reads ViUR`s session: the user string, the data without the user entity', async () => {
    const s = await seed({
      data: { user: userEntity(ns), language: { stringValue: 'de' }, when: { timestampValue: { seconds: '1767268800', nanos: 0 } } },
      user: USER_STRING,
    });
    const res = await http().get('/session').set('Cookie', s.header).expect(200);
    expect(res.body).toEqual({ user: USER_STRING, data: { language: 'de', when: { $timestamp: '2026-01-01T12:00:00Z' } } });
    expect(res.headers['set-cookie']).toBeUndefined();
    await http().get('/session/data/user').set('Cookie', s.header).expect(404);
    await http().get('/session/data/language').set('Cookie', s.header).expect(200, { key: 'language', value: 'de' });
  });

  test('a page gets a key (which starts a ViUR session), writes with it, and gets a fresh one; the stored shape is ViUR`s', async () => {
    const first = await http().get('/session/security-key').expect(200);
    const setCookie = (first.headers['set-cookie'] as unknown as string[])[0];
    expect(setCookie).toMatch(new RegExp(`^${COOKIE}=[A-Za-z0-9]{42};Path=/;HttpOnly;SameSite=lax;Secure;Max-Age=3600$`));
    expect(first.headers['sec-x-viur-staticskey']).toMatch(/^[A-Za-z0-9]{13}$/);
    const cookie = setCookie.split(';')[0];
    const value = cookie.split('=')[1];
    const put = await http()
      .put('/session/data/cart')
      .set('Cookie', cookie)
      .set('X-Security-Key', first.body.securityKey as string)
      .send({ items: [1, 2], note: LONG_TEXT })
      .expect(200);
    expect(put.headers['x-security-key']).toMatch(/^[A-Za-z0-9]{13}$/);
    const e = (await stored(value))!;
    expect(Object.keys(e.properties).sort()).toEqual(['data', 'lastseen', 'static_security_key', 'user']);
    expect(shape(e.properties.user)).toEqual({ type: 'stringValue', flag: false, value: '__guest__' });
    expect(shapeAll(e.properties.data.entityValue!.properties)).toEqual({
      cart: {
        type: 'entityValue',
        flag: false,
        key: null,
        properties: {
          items: {
            type: 'arrayValue',
            flag: false,
            values: [
              { type: 'integerValue', flag: false, value: '1' },
              { type: 'integerValue', flag: false, value: '2' },
            ],
          },
          note: { type: 'stringValue', flag: true, value: LONG_TEXT },
        },
      },
    });
    // The consumed key is gone; the fresh one is bound to this session.
    expect(await rawEntity(ds, rawKey(KEY_KIND, first.body.securityKey as string, ns))).toBeNull();
    const fresh = (await rawEntity(ds, rawKey(KEY_KIND, put.headers['x-security-key'], ns)))!;
    expect(shape(fresh.properties.viur_session)).toEqual({ type: 'stringValue', flag: false, value: value });
  });

  test('a change needs a key of this session: the static key works, another session`s key is spent and refused', async () => {
    const s = await seed();
    const other = keyValue();
    await writeRaw(ds, [keyEntity({ namespace: ns, key: other, session: cookieValue(), untilMs: Date.now() + 60_000 })]);
    await http().patch('/session').set('Cookie', s.header).set('X-Security-Key', other).send({ a: 1 }).expect(403);
    expect(await rawEntity(ds, rawKey(KEY_KIND, other, ns))).toBeNull();
    await http().patch('/session').set('Cookie', s.header).send({ a: 1 }).expect(403);
    const ok = await http()
      .patch('/session')
      .set('Cookie', s.header)
      .set('X-Static-Security-Key', s.staticKey)
      .send({ a: 1.5, b: 2 })
      .expect(200);
    expect(ok.body).toEqual({ user: null, data: { a: 1.5, b: 2 } });
    await http()
      .post('/session/static-security-key/validate')
      .set('Cookie', s.header)
      .send({ key: s.staticKey })
      .expect(200, { valid: true });
    await http().post('/session/static-security-key/validate').set('Cookie', s.header).send({ key: 'nope' }).expect(200, { valid: false });
  });

  test('a write to a killed session is refused and does not bring it back', async () => {
    const s = await seed();
    await new Promise<void>((resolve, reject) =>
      ds.request_(
        {
          client: 'DatastoreClient',
          method: 'commit',
          reqOpts: { mode: 'NON_TRANSACTIONAL', mutations: [{ delete: rawKey(VIUR_KIND, s.cookie, ns) }] },
        },
        (e: unknown) => (e ? reject(e) : resolve()),
      ),
    );
    await http()
      .put('/session/data/a')
      .set('Cookie', s.header)
      .set('X-Static-Security-Key', s.staticKey)
      .send('1')
      .type('json')
      .expect(403);
    expect(await stored(s.cookie)).toBeNull();
  });

  test('logout keeps SESSION_PERSISTENT_FIELDS_ON_LOGOUT in a new guest session; a guest gets 401', async () => {
    const s = await seed({
      data: { user: userEntity(ns), language: { stringValue: 'de' }, cart: { integerValue: '1' } },
      user: USER_STRING,
    });
    const res = await http().post('/session/logout').set('Cookie', s.header).set('X-Static-Security-Key', s.staticKey).expect(200);
    expect(res.body).toEqual({ user: null, data: { language: 'de' } });
    expect(await stored(s.cookie)).toBeNull();
    const guest = await seed();
    const refused = await http()
      .post('/session/logout')
      .set('Cookie', guest.header)
      .set('X-Static-Security-Key', guest.staticKey)
      .expect(401);
    expect(refused.body.error.code).toBe('unauthenticated');
  });

  test('reset starts an empty guest session under a new cookie', async () => {
    const s = await seed({ data: { language: { stringValue: 'de' } } });
    const res = await http()
      .post('/session/reset')
      .set('Cookie', s.header)
      .set('X-Static-Security-Key', s.staticKey)
      .expect(200, { user: null, data: {} });
    expect((res.headers['set-cookie'] as unknown as string[])[0]).not.toContain(s.cookie);
    expect(await stored(s.cookie)).toBeNull();
  });

  test('login and the device routes answer 404 not_in_viur_format', async () => {
    const s = await seed();
    for (const res of [
      await http().post('/session/login').send({ user: 'alice' }),
      await http().get('/session/devices').set('Cookie', s.header),
      await http().post('/session/devices/logout-others').set('Cookie', s.header),
      await http().delete('/session/devices/abc').set('Cookie', s.header),
    ]) {
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_in_viur_format');
    }
  });

  test('a change from another site is refused before anything is read', async () => {
    const s = await seed();
    await http()
      .patch('/session')
      .set('Cookie', s.header)
      .set('Origin', 'https://evil.example')
      .set('X-Static-Security-Key', s.staticKey)
      .send({ a: 1 })
      .expect(403);
  });
});
