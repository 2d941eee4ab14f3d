/**
 * terraform/monitoring.tf against the log lines the functions really write. The three entry points
 * run in this process under functions-framework's test server (the module that registers them, as
 * functions-framework loads it) with every log line captured; each line becomes the LogEntry Cloud
 * Run makes of it, and every log-based metric's filter is run on those entries by the evaluator of
 * test/support/loggingFilter.ts (the subset of the Logging query language the filters use, tested
 * below against its documented semantics). Cloud Logging itself is not reachable from the tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from '@cdktf/hcl2json';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import request from 'supertest';
import '../../functions/index';
import { StoreUnavailableError } from '../../lib/core/errors';
import { closePublishers } from '../../lib/jobs/killPublisher';
import { derivedDigestKey, setLogSink, userDigest } from '../../lib/setup/log';
import { createRuntime, setRuntime } from '../../lib/setup/runtime';
import { MemorySessionStore } from '../../lib/store/memoryStore';
import type { SessionStore } from '../../lib/store/sessionStore';
import { FakeClock } from '../support/clock';
import { testConfig } from '../support/fixtures';
import { evaluate, extract, fieldsOf, fieldValue, type LogEntry, matches, parseFilter, toLogEntry } from '../support/loggingFilter';
import { ObservedStore, seed, stored } from '../support/seed';
import { uniqueName } from '../support/pubsub';

type Json = Record<string, unknown>;

const ROOT = path.resolve(__dirname, '..', '..');
const PROJECT = 'session-test';
const PREFIX = 'session';
const T0 = Date.UTC(2026, 0, 1, 3, 0, 0);
const USER = 'alice@example.com';

const locals: Json = {};
let counterBody: Json = {};

/** A local's string with every `${local.x}` and `${var.name_prefix}` filled in, as Terraform would. */
function resolved(text: string, depth = 0): string {
  if (depth > 10) throw new Error(`locals nest too deep: ${text}`);
  return text
    .replace(/\$\{local\.(\w+)\}/g, (_, name: string) => resolved(String(locals[name]), depth + 1))
    .replace(/\$\{var\.name_prefix\}/g, PREFIX)
    .replace(/\$\{var\.project_id\}/g, PROJECT);
}

const filters = (): Record<string, string> =>
  Object.fromEntries(Object.entries(locals.log_metric_filters as Record<string, string>).map(([k, v]) => [k, resolved(v)]));

/** Every captured line as the entry Cloud Logging would hold, with the service that wrote it. */
const entries: { service: string; entry: LogEntry }[] = [];
let service = '';

function useRuntime(store: SessionStore, env: Record<string, string> = {}, clock = new FakeClock(T0)): FakeClock {
  setRuntime(createRuntime(testConfig({ SESSION_LOG_REQUESTS: 'all', ...env }), { store, clock }));
  return clock;
}

/** A store on which every call fails as an unreachable Datastore does. */
function failingStore(): SessionStore {
  return new Proxy(new MemorySessionStore(), {
    get: (target, prop, receiver) => {
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? () => Promise.reject(new StoreUnavailableError()) : value;
    },
  });
}

function pushEnvelope(data: unknown, id: string, publishTime: number) {
  return {
    message: {
      data: Buffer.from(JSON.stringify(data)).toString('base64'),
      messageId: id,
      publishTime: new Date(publishTime).toISOString(),
    },
  };
}

async function deliverKill(data: unknown, id: string, publishTime: number): Promise<number> {
  const res = await request(getTestServer('killSessionByUser'))
    .post('/')
    .set({
      'content-type': 'application/json',
      'ce-id': id,
      'ce-specversion': '1.0',
      'ce-type': 'google.cloud.pubsub.topic.v1.messagePublished',
      'ce-source': `//pubsub.googleapis.com/projects/${PROJECT}/topics/session-kill`,
    })
    .send(pushEnvelope(data, id, publishTime));
  return res.status;
}

beforeAll(async () => {
  const hcl = (await parse('monitoring.tf', fs.readFileSync(path.join(ROOT, 'terraform', 'monitoring.tf'), 'utf8'))) as Json;
  for (const block of hcl.locals as Json[]) Object.assign(locals, block);
  counterBody = ((hcl.resource as Json).google_logging_metric as Record<string, Json[]>).counter[0];

  setLogSink((line) => entries.push({ service, entry: toLogEntry(line, { project: PROJECT, service }) }));

  // sessionApi: a health check, a session, a refused write (403 csrf), an unknown route (404), and
  // reads while the store is down (503 store_unavailable).
  service = `${PREFIX}-api`;
  useRuntime(new MemorySessionStore());
  const api = getTestServer('sessionApi');
  await request(api).get('/healthz').expect(200);
  const first = await request(api).get('/session/security-key').expect(200);
  const cookie = String((first.headers['set-cookie'] as unknown as string[])[0]).split(';')[0];
  await request(api).put('/session/data/theme').set('cookie', cookie).send({ value: 'dark' }).expect(403);
  await request(api).get('/no-such-route').expect(404);
  useRuntime(failingStore());
  await request(api).get('/session').set('cookie', cookie).expect(503);

  // killSessionByUser: a kill published 1.5 s before it is processed, and one that fails.
  service = `${PREFIX}-kill`;
  const killStore = new MemorySessionStore();
  await seed(killStore, [['a-1', stored({ user: USER, createdAt: T0 - 3600_000 })]]);
  useRuntime(killStore);
  expect(await deliverKill({ user: USER }, 'kill-1', T0 - 1500)).toBeLessThan(300);
  useRuntime(failingStore());
  expect(await deliverKill({ user: USER }, 'kill-2', T0 - 1500)).toBeGreaterThanOrEqual(500);

  // startClearSessions: a run that finishes, one whose budget runs out and whose continuation
  // cannot be published (no such topic), and one on a failing store.
  service = `${PREFIX}-cleanup`;
  const cleanupStore = new MemorySessionStore();
  await seed(cleanupStore, [['e-1', stored({ createdAt: T0 - 5 * 3600_000, expiresAt: T0 - 3600_000 })]]);
  useRuntime(cleanupStore);
  await request(getTestServer('startClearSessions')).post('/').expect(200);
  const slow = new ObservedStore(new MemorySessionStore());
  await seed(
    slow,
    Array.from({ length: 20 }, (_, i) => [`x-${i}`, stored({ createdAt: T0 - 5 * 3600_000, expiresAt: T0 - 3600_000 - i })]),
  );
  const clock = useRuntime(slow, {
    SESSION_CLEANUP_BUDGET_SECONDS: '1',
    SESSION_DELETE_BATCH_SIZE: '5',
    SESSION_DELETE_PARALLELISM: '1',
    SESSION_KILL_TOPIC: uniqueName('missing'),
  });
  slow.beforeFind = () => clock.advance(2000);
  await request(getTestServer('startClearSessions')).post('/').expect(503);
  useRuntime(failingStore());
  await request(getTestServer('startClearSessions')).post('/').expect(503);
  service = '';
}, 60_000);

afterAll(async () => {
  setLogSink(null);
  setRuntime(undefined);
  await closePublishers();
});

/** What each metric must find among the captured lines: the messages of the lines it counts, exactly. */
const EXPECTED: Record<string, string[]> = {
  answers: ['GET /healthz 200', 'GET /session/security-key 200', 'PUT /session/data/{key} 403', 'GET unknown 404', 'GET /session 503'],
  server_errors: ['GET /session 503'],
  store_unavailable: ['GET /session 503'],
  csrf_refused: ['PUT /session/data/{key} 403'],
  kill_latency: ['kill finished'],
  kill_sessions_ended: ['kill finished'],
  kill_failed: ['kill message failed; Pub/Sub will redeliver it'],
  cleanup_sessions_ended: ['cleanup finished', 'cleanup budget spent'],
  cleanup_unfinished: ['cleanup budget spent'],
  cleanup_failed: ['could not publish the cleanup continuation', 'cleanup failed; the next run (or a retry) continues where it stopped'],
};

/** Metrics on logs the functions do not write (Cloud Scheduler's own), checked on a documented entry shape instead. */
const NOT_FROM_THE_FUNCTIONS = ['scheduler_failed'];

describe('log-based metrics (terraform/monitoring.tf) on the lines the functions write', () => {
  test('the captured lines are what the functions write in production shape (one service each)', () => {
    expect(entries.length).toBeGreaterThan(10);
    for (const { service: s } of entries) expect(s).toMatch(/^session-(api|kill|cleanup)$/);
  });

  test('every metric is either matched against real lines here or named as fed by another service', () => {
    expect(Object.keys(filters()).sort()).toEqual([...Object.keys(EXPECTED), ...NOT_FROM_THE_FUNCTIONS].sort());
  });

  test.each(Object.keys(EXPECTED))('%s: its filter matches exactly the lines it is meant to count', (name) => {
    const filter = filters()[name];
    const matched = entries.filter((e) => matches(filter, e.entry)).map((e) => fieldValue(e.entry, ['jsonPayload', 'message']));
    const expected = EXPECTED[name];
    expect(matched.sort()).toEqual([...expected].sort());
  });

  test.each(Object.keys(EXPECTED))('%s: stops matching when any field its filter relies on is renamed or missing', (name) => {
    const node = parseFilter(filters()[name]);
    const fields = fieldsOf(node);
    expect(fields.length).toBeGreaterThan(0);
    const matched = entries.filter((e) => evaluate(node, e.entry));
    expect(matched.length).toBeGreaterThan(0);
    for (const { entry } of matched) {
      for (const field of fields) {
        const parts = field.split('.');
        if (fieldValue(entry, parts) === undefined) continue; // the other side of an OR
        const copy = structuredClone(entry);
        const parent = fieldValue(copy, parts.slice(0, -1)) as Json;
        parent[`${parts[parts.length - 1]}_renamed`] = parent[parts[parts.length - 1]];
        delete parent[parts[parts.length - 1]];
        expect({ name, field, matches: evaluate(node, copy) }).toEqual({ name, field, matches: false });
      }
    }
  });

  test('the kill latency metric reads the measured publish-to-done latency; the sessions-ended metrics read the counts', () => {
    const values = locals.log_metric_values as Record<string, string>;
    const killLine = entries.find((e) => matches(filters().kill_latency, e.entry))!.entry;
    // Published 1.5 s before the (fake) clock's now: the latency the line reports.
    expect(extract(`EXTRACT(${values.kill_latency})`, killLine)).toBe(1500);
    expect(extract(`EXTRACT(${values.kill_sessions_ended})`, killLine)).toBe(1);
    const cleanupLines = entries.filter((e) => matches(filters().cleanup_sessions_ended, e.entry)).map((e) => e.entry);
    expect(cleanupLines.map((l) => extract(`EXTRACT(${values.cleanup_sessions_ended})`, l))).toEqual([1, 5]);
  });

  test('answers are labelled by status and error code', () => {
    const labels = String(counterBody.label_extractors);
    expect(labels).toContain('status     = "EXTRACT(httpRequest.status)"');
    expect(labels).toContain('error_code = "EXTRACT(jsonPayload.errorCode)"');
    const csrf = entries.find((e) => matches(filters().csrf_refused, e.entry))!.entry;
    expect([extract('EXTRACT(httpRequest.status)', csrf), extract('EXTRACT(jsonPayload.errorCode)', csrf)]).toEqual([403, 'csrf']);
  });

  test("scheduler_failed matches Cloud Scheduler's log of a failed attempt of this stack's job, not of another job or a success", () => {
    // The shape Cloud Scheduler writes for an attempt (resource cloud_scheduler_job, severity by outcome).
    const attempt = (jobId: string, severity: string): LogEntry => ({
      logName: `projects/${PROJECT}/logs/cloudscheduler.googleapis.com%2Fexecutions`,
      resource: { type: 'cloud_scheduler_job', labels: { job_id: jobId, location: 'europe-west1', project_id: PROJECT } },
      severity,
      jsonPayload: { '@type': 'type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished', status: 'UNAVAILABLE' },
    });
    const filter = filters().scheduler_failed;
    expect(matches(filter, attempt(`${PREFIX}-cleanup`, 'ERROR'))).toBe(true);
    expect(matches(filter, attempt(`${PREFIX}-cleanup`, 'INFO'))).toBe(false);
    expect(matches(filter, attempt('staging-cleanup', 'ERROR'))).toBe(false);
  });

  test('kill lines name the user by its keyed digest, never by the id', () => {
    const killLines = entries.filter((e) => e.service === `${PREFIX}-kill`);
    expect(killLines.length).toBeGreaterThan(0);
    for (const { entry } of killLines) expect(JSON.stringify(entry)).not.toContain(USER);
    const started = killLines.find((e) => (e.entry.jsonPayload as Json).message === 'kill started')!.entry.jsonPayload as Json;
    expect(started.userDigest).toBe(userDigest(USER, derivedDigestKey(PROJECT)));
    expect(started.user).toBeUndefined();
  });
});

describe('the filter evaluator (test/support/loggingFilter.ts) keeps to the documented semantics of its subset', () => {
  const entry: LogEntry = {
    severity: 'WARNING',
    httpRequest: { status: 403 },
    resource: { type: 'cloud_run_revision', labels: { service_name: 'session-api' } },
    jsonPayload: { message: 'PUT /session/data/{key} 403', errorCode: 'csrf', deleted: 0, done: false },
  };
  test.each([
    ['resource.type="cloud_run_revision"', true],
    ['resource.type="Cloud_Run_Revision"', false],
    ['jsonPayload.message:"session/DATA"', true],
    ['jsonPayload.message=~"^[A-Z]+ /"', true],
    ['jsonPayload.message=~"^/"', false],
    ['jsonPayload.message!~"^GET"', true],
    ['httpRequest.status>=400', true],
    ['httpRequest.status>=500', false],
    ['httpRequest.status=403', true],
    ['httpRequest.status<1000', true],
    ['jsonPayload.deleted>=0', true],
    ['jsonPayload.done=false', true],
    ['severity>=WARNING', true],
    ['severity>=ERROR', false],
    ['severity<ERROR', true],
    ['jsonPayload.errorCode:*', true],
    ['jsonPayload.errorCause:*', false],
    // A missing field fails every comparison, != included; NOT of it succeeds.
    ['jsonPayload.errorCause!="x"', false],
    ['NOT jsonPayload.errorCause="x"', true],
    ['-jsonPayload.errorCause="x"', true],
    // Juxtaposition is AND.
    ['httpRequest.status=403 jsonPayload.errorCode="csrf"', true],
    ['httpRequest.status=403 jsonPayload.errorCode="x"', false],
    // OR binds tighter than AND: (false OR true) AND true.
    ['httpRequest.status=500 OR httpRequest.status=403 AND severity=WARNING', true],
    // ... and so this is (true OR x) AND false, not true OR (x AND false).
    ['httpRequest.status=403 OR httpRequest.status=500 AND severity=ERROR', false],
    // NOT binds tighter than OR.
    ['NOT httpRequest.status=403 OR severity=WARNING', true],
    ['NOT (httpRequest.status=403 OR severity=WARNING)', false],
    ['(resource.labels.service_name="session-kill" OR resource.labels.service_name="session-api") AND severity=WARNING', true],
  ])('%s → %s', (filter, expected) => {
    expect(matches(filter, entry)).toBe(expected);
  });

  test.each(['jsonPayload.message', 'kill', 'a.b = ', 'a.b="x" AND', '(a.b="x"', 'a.b=*', 'a.b="\\n"'])(
    'refuses what is outside the subset: %s',
    (filter) => {
      expect(() => matches(filter, entry)).toThrow();
    },
  );

  test('a line becomes the entry Cloud Run makes of it: severity, httpRequest and trace lifted, the rest jsonPayload', () => {
    const e = toLogEntry(
      JSON.stringify({ severity: 'ERROR', message: 'm', httpRequest: { status: 503 }, 'logging.googleapis.com/trace': 't', x: 1 }),
      { project: 'p', service: 's' },
    );
    expect(e).toEqual({
      logName: 'projects/p/logs/run.googleapis.com%2Fstderr',
      resource: { type: 'cloud_run_revision', labels: { project_id: 'p', service_name: 's', location: 'europe-west1' } },
      severity: 'ERROR',
      httpRequest: { status: 503 },
      trace: 't',
      jsonPayload: { message: 'm', x: 1 },
    });
    expect(toLogEntry('{"severity":"INFO","message":"m"}', { project: 'p', service: 's' }).logName).toBe(
      'projects/p/logs/run.googleapis.com%2Fstdout',
    );
  });
});
