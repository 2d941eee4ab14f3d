/**
 * The Express middleware in viur format (viurSession, viurCsrf) in the real Express 5 through
 * supertest, on sessions and keys written in a ViUR 3.8 app's shape on the Datastore emulator.
 */
import express from 'express';
import request from 'supertest';
import { viurCsrf, viurSession, viurSessionOf } from '../../../lib/express';
import { createViurSessions } from '../../../lib/viur/runtime';
import { datastore, testConfig, uniqueNamespace } from '../../support/fixtures';
import {
  cookieValue,
  KEY_KIND,
  keyEntity,
  keyValue,
  rawEntity,
  rawKey,
  sessionEntity,
  USER_STRING,
  userEntity,
  writeRaw,
} from '../../support/viurSessionFixtures';

const ds = datastore();
const ns = uniqueNamespace('viurmw');
const viur = createViurSessions(testConfig({ SESSION_FORMAT: 'viur', SESSION_NAMESPACE: ns }), { datastore: ds });

const app = express();
app.use(viurSession({ viur }));
app.get('/me', (req, res) => {
  res.json(viurSessionOf(req));
});
app.post('/order', viurCsrf({ viur }), (_req, res) => {
  res.status(201).json({ ordered: true });
});

async function seed() {
  const cookie = cookieValue();
  const staticKey = keyValue();
  await writeRaw(ds, [
    sessionEntity({
      namespace: ns,
      cookie,
      data: { user: userEntity(ns), language: { stringValue: 'de' } },
      lastseen: Date.now() / 1000,
      staticKey,
      user: USER_STRING,
    }),
  ]);
  return { cookie, staticKey, header: `viur_cookie_session-test=${cookie}` };
}

test('viurSession puts {user, data} of the ViUR session on the request, without the user entity', async () => {
  const s = await seed();
  await request(app)
    .get('/me')
    .set('Cookie', s.header)
    .expect(200, { user: USER_STRING, data: { language: 'de' } });
  await request(app).get('/me').expect(200, { user: null, data: {} });
});

test('viurCsrf lets a change through with a bound one-time key (spent, a fresh one answered) or the static key, else 403 before the handler', async () => {
  const s = await seed();
  const key = keyValue();
  await writeRaw(ds, [keyEntity({ namespace: ns, key, session: s.cookie, untilMs: Date.now() + 60_000 })]);
  const ok = await request(app).post('/order').set('Cookie', s.header).set('X-Security-Key', key).expect(201);
  expect(ok.headers['x-security-key']).toMatch(/^[A-Za-z0-9]{13}$/);
  expect(await rawEntity(ds, rawKey(KEY_KIND, key, ns))).toBeNull();
  const again = await request(app).post('/order').set('Cookie', s.header).set('X-Security-Key', key).expect(403);
  expect(again.body.error.code).toBe('csrf');
  await request(app).post('/order').set('Cookie', s.header).set('X-Static-Security-Key', s.staticKey).expect(201);
  await request(app).post('/order').set('Cookie', s.header).expect(403);
});
