import express from 'express';
import request from 'supertest';
import { visitCounter } from '../../examples/visitCounter';
import { MemorySessionStore } from '../../lib/store/memoryStore';
import { cookieOf } from '../support/api';
import { datastoreStore, FakeClock, manager, uniqueNamespace } from '../support/fixtures';

describe.each([
  ['memory store', () => new MemorySessionStore()],
  ['Datastore emulator', () => datastoreStore(uniqueNamespace('example'))],
])('examples/visitCounter on the %s', (_label, makeStore) => {
  test('counts visits per session cookie', async () => {
    const app = express();
    app.get('/', visitCounter(manager(makeStore(), new FakeClock(Date.now()))));
    const first = await request(app).get('/').expect(200, { visits: 1, user: null });
    const cookie = cookieOf(first);
    await request(app).get('/').set('Cookie', cookie).expect(200, { visits: 2, user: null });
    await request(app).get('/').set('Cookie', cookie).expect(200, { visits: 3, user: null });
    await request(app).get('/').expect(200, { visits: 1, user: null });
  });
});
