/**
 * The privileged routes with SESSION_FORMAT=viur: the kill route takes ViUR's user strings and key
 * paths (a path that cannot be converted is a 400 before anything is published); the routes that
 * need this service's own login or device records answer 404 with a JSON error saying why.
 */
import { PubSub } from '@google-cloud/pubsub';
import request from 'supertest';
import { MemorySessionStore } from '../../../lib/store/memoryStore';
import { AUDIENCE, startApi, type ApiHarness } from '../../support/api';
import { uniqueNamespace } from '../../support/fixtures';

let api: ApiHarness;
const TOPIC = `kill-${uniqueNamespace('viur')}`;

beforeAll(async () => {
  api = await startApi({ SESSION_FORMAT: 'viur', SESSION_KILL_TOPIC: TOPIC });
});
afterAll(async () => {
  const { closePublishers } = await import('../../../lib/jobs/killPublisher');
  await closePublishers();
});
beforeEach(() => {
  // The routes under test never read a session: the memory store keeps the viur format's own store out of this file.
  api.use({}, new MemorySessionStore());
});

const http = () => request(api.server);
const auth = () => `Bearer ${api.admin.mint(AUDIENCE)}`;

test('login, listing a user’s sessions and ending one answer 404 not_in_viur_format, saying why', async () => {
  // Login is absent in viur format whoever asks (routes/viur.ts), so no token is needed to learn it.
  await http().post('/session/login').send({ user: 'u1' }).expect(404);
  const cases = [
    http().post('/session/login').set('Authorization', auth()).send({ user: 'u1' }),
    http().get('/users/u1/sessions').set('Authorization', auth()),
    http().delete('/users/u1/sessions/abc').set('Authorization', auth()),
  ];
  for (const pending of cases) {
    const res = await pending;
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_in_viur_format');
    expect(res.body.error.message).toMatch(/SESSION_FORMAT=viur/);
  }
});

test('a kill takes a key path, the stored string, __guest__ and null; a path that does not convert is a 400', async () => {
  const pubsub = new PubSub({ projectId: 'session-test' });
  const [topic] = await pubsub.createTopic(TOPIC);
  await topic.createSubscription(`${TOPIC}-check`);
  try {
    for (const user of ['user/alice', 'user/123', 'agxzZXNzaW9uLXRlc3RyDwsSBHVzZXIiBWFsaWNlDA', '__guest__', null]) {
      await http().post('/sessions/kill').set('Authorization', auth()).send({ user }).expect(202);
    }
    await http()
      .post('/sessions/kill')
      .set('Authorization', auth())
      .send({ users: ['user/a', 'user/b'] })
      .expect(202);
    for (const user of ['user/alice/x', 'user/0', 'user/']) {
      const res = await http().post('/sessions/kill').set('Authorization', auth()).send({ user });
      expect([res.status, res.body.error.code]).toEqual([400, 'invalid_user']);
    }
    const res = await http()
      .post('/sessions/kill')
      .set('Authorization', auth())
      .send({ users: ['user/a', 'x/y/z'] });
    expect([res.status, res.body.error.code]).toEqual([400, 'invalid_user']);
  } finally {
    await pubsub.close();
  }
});
