/**
 * The functions on every supported Node (package.json `engines`: the LTS lines 22 and 24, the
 * newest of which terraform/ deploys), not only on the Node running the tests: the binaries come
 * from the npm registry (scripts/node-versions.js). For each, sessionApi and killSessionByUser run
 * under the real functions-framework on that binary, against the Datastore and Pub/Sub emulators:
 * a session is made, logged in, written and read back, then killed through the privileged route →
 * Pub/Sub (a push subscription) → killSessionByUser → Datastore. The deployed bundle
 * (test/deploy/deployedTree.test.ts) and the packed package's entries (test/integration/package.test.ts)
 * have their own per-version tests.
 */
import { mkdtempSync, readlinkSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PubSub } from '@google-cloud/pubsub';
import { freePort } from '../../scripts/emulators';
import { createLocalAdmin } from '../../scripts/localAdmin';
import { uniqueNamespace } from '../support/fixtures';
import { ensureBuilt, type FunctionProcess, startFunction } from '../support/functionsFramework';
import { extraNodes } from '../support/nodeVersions';
import { pubsub, pushTopic, uniqueName } from '../support/pubsub';

const ADMIN_EMAIL = 'backend@session-test.iam.gserviceaccount.com';
const AUDIENCE = 'https://session-api.test';

let client: PubSub;
const running: FunctionProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  extraNodes();
  client = pubsub();
}, 900_000);

afterAll(async () => {
  await Promise.all(running.map((f) => f.stop()));
  await client?.close();
});

function cookieOf(res: Response): string {
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .find((c) => c.startsWith('__Host-viur_cookie_'));
  if (!cookie) throw new Error(`no session cookie in ${res.status}`);
  return cookie;
}

describe.each(extraNodes().map((n) => [n.major, n.bin]))('Node %s', (major, bin) => {
  test(`runs sessionApi and killSessionByUser under functions-framework: a session round trip, a login, and a kill through Pub/Sub`, async () => {
    const admin = createLocalAdmin(mkdtempSync(join(tmpdir(), 'node-versions-admin-')), ADMIN_EMAIL);
    const topic = uniqueName(`node${major}`);
    const env = {
      GOOGLE_CLOUD_PROJECT: 'session-test',
      SESSION_STORE: 'datastore',
      SESSION_NAMESPACE: uniqueNamespace(`node${major}`),
      SESSION_KILL_TOPIC: topic,
      SESSION_ADMIN_JWKS_FILE: admin.jwksFile,
      SESSION_ADMIN_PRINCIPALS: ADMIN_EMAIL,
      SESSION_ADMIN_AUDIENCE: AUDIENCE,
    };
    const killPort = await freePort();
    await pushTopic(client, topic, killPort);
    const kill = await startFunction('killSessionByUser', 'cloudevent', env, killPort, bin);
    running.push(kill);
    const api = await startFunction('sessionApi', 'http', env, undefined, bin);
    running.push(api);
    // The processes really are that binary (not a `node` found on PATH).
    for (const f of [api, kill]) expect(realpathSync(readlinkSync(`/proc/${f.pid}/exe`))).toBe(realpathSync(bin));

    const first = await fetch(`${api.url}/session/security-key`);
    expect(first.status).toBe(200);
    const login = await fetch(`${api.url}/session/login`, {
      method: 'POST',
      headers: { cookie: cookieOf(first), authorization: `Bearer ${admin.mint(AUDIENCE)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user: `user-node${major}` }),
    });
    expect(login.status).toBe(200);
    const cookie = cookieOf(login);
    const key = login.headers.get('sec-x-viur-staticskey');
    expect(key).toBeTruthy();
    const put = await fetch(`${api.url}/session/data/colour`, {
      method: 'PUT',
      headers: { cookie, 'sec-x-viur-staticskey': key!, 'content-type': 'application/json' },
      body: '"teal"',
    });
    expect(put.status).toBe(200);
    const read = await fetch(`${api.url}/session`, { headers: { cookie } });
    expect(await read.json()).toEqual({ user: `user-node${major}`, data: { colour: 'teal' } });

    const killed = await fetch(`${api.url}/sessions/kill`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin.mint(AUDIENCE)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user: `user-node${major}` }),
    });
    expect(killed.status).toBe(202);
    const { messageId } = (await killed.json()) as { messageId: string };
    let finished: unknown;
    for (let i = 0; i < 300 && !finished; i++) {
      finished = kill.logs().find((l) => l.message === 'kill finished' && l.messageId === messageId);
      if (!finished) await new Promise((r) => setTimeout(r, 100));
    }
    expect(finished).toMatchObject({ messageId, deleted: 1 });
    // The old cookie no longer finds the session: a fresh guest one answers.
    const after = await fetch(`${api.url}/session`, { headers: { cookie } });
    expect(await after.json()).toEqual({ user: null, data: {} });
  }, 120_000);
});
