/**
 * Session events through the HTTP function (docs/events.md): sessionApi under functions-framework,
 * configured with SESSION_EVENTS_TOPIC, on the Firestore emulator, publishing to the Pub/Sub
 * emulator. What a subscriber of the topic receives for a login, a device ended from another one,
 * an admin ending a session, and a logout: the types, users, handles and attributes.
 */
import request from 'supertest';
import type { PubSub } from '@google-cloud/pubsub';
import { deviceHandle } from '../../../lib/core/devices';
import type { SessionEvent } from '../../../lib/core/events';
import { digest } from '../../../lib/core/ids';
import { setLogSink } from '../../../lib/setup/log';
import { AUDIENCE, cookieOf, startApi, type ApiHarness } from '../../support/api';
import { pubsub, pullTopic, receive, uniqueName } from '../../support/pubsub';

let api: ApiHarness;
let client: PubSub;

beforeAll(async () => {
  api = await startApi();
  client = pubsub();
  setLogSink(() => {});
});
afterAll(async () => {
  setLogSink(null);
  await client?.close();
});

const http = () => request(api.server);
const handleOf = (cookie: string) => deviceHandle(digest(cookie.split('=')[1]));

async function login(user: string): Promise<{ cookie: string; staticKey: string }> {
  const res = await http()
    .post('/session/login')
    .set('Authorization', `Bearer ${api.admin.mint(AUDIENCE)}`)
    .send({ user })
    .expect(200);
  return { cookie: cookieOf(res), staticKey: res.headers['sec-x-viur-staticskey'] };
}

test('login, a device ended from another, an admin ending a session and a logout each reach the topic as their events', async () => {
  const topic = uniqueName('session-events');
  const { subscription } = await pullTopic(client, topic);
  const rt = api.use({ SESSION_EVENTS_TOPIC: topic });
  const user = uniqueName('user');
  const [a, b, c] = [await login(user), await login(user), await login(user)];
  await http()
    .delete(`/session/devices/${handleOf(b.cookie)}`)
    .set('Cookie', a.cookie)
    .set('Sec-X-ViUR-StaticSKey', a.staticKey)
    .expect(204);
  await http()
    .delete(`/users/${encodeURIComponent(user)}/sessions/${handleOf(c.cookie)}`)
    .set('Authorization', `Bearer ${api.admin.mint(AUDIENCE)}`)
    .expect(204);
  await http().post('/session/logout').set('Cookie', a.cookie).set('Sec-X-ViUR-StaticSKey', a.staticKey).expect(200);

  const messages = await receive(subscription, 9);
  const events = messages.map((m) => {
    const event = JSON.parse(m.data.toString('utf8')) as SessionEvent;
    expect(m.attributes).toEqual({ eventId: event.id, type: event.type, ...(event.reason ? { reason: event.reason } : {}) });
    return event;
  });
  const seen = events.map(({ type, reason, user: u, device }) => ({ type, reason, user: u, device }));
  const expected = [
    ...[a, b, c].flatMap((s) => [
      { type: 'created', user, device: handleOf(s.cookie) },
      { type: 'login', user, device: handleOf(s.cookie) },
    ]),
    { type: 'ended', reason: 'device', user, device: handleOf(b.cookie) },
    { type: 'ended', reason: 'admin', user, device: handleOf(c.cookie) },
    { type: 'logout', user, device: handleOf(a.cookie) },
  ];
  const order = (x: { type: string; device: string }) => `${x.type} ${x.device}`;
  expect(seen.sort((x, y) => order(x).localeCompare(order(y)))).toEqual(expected.sort((x, y) => order(x).localeCompare(order(y))));
  expect(new Set(events.map((e) => e.id)).size).toBe(9);
  // Every record was published by its request and removed from the outbox.
  await rt.events?.idle();
  expect(await api.store.pendingOutbox!(Date.now() + 1, 10)).toEqual([]);
  await client.topic(topic).delete();
}, 120_000);
