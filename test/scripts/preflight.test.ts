/**
 * `npm run preflight` with a stand-in gcloud first on PATH (as test/terraform stands in for it in
 * the TTL step): each finding is one line, a problem names what to do, and the exit code says
 * whether anything is in the way of the first apply. The stand-in answers from files of a fixture
 * directory, one per gcloud command the preflight runs.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BOOTSTRAP_APIS, REQUIRED_ROLES, STACK_APIS } from '../../scripts/preflight';
import { ensureBuilt, ROOT } from '../support/functionsFramework';

const STAND_IN = `#!/bin/sh
case "$1 $2" in
  "config get-value") f=account ;;
  "projects describe") f=project ;;
  "services list") f=services ;;
  "firestore databases") f=database ;;
  "projects get-iam-policy") f=policy ;;
  *) echo "the stand-in does not know: gcloud $*" >&2; exit 99 ;;
esac
printf '%s\\n' "$*" >> "$FIXTURE/calls"
if [ -f "$FIXTURE/$f.err" ]; then cat "$FIXTURE/$f.err" >&2; exit 1; fi
cat "$FIXTURE/$f"
`;

interface Fixture {
  account?: string;
  adc?: Record<string, unknown> | null;
  services?: string[];
  database?: Record<string, unknown> | { error: string };
  policy?: { role: string; members: string[] }[];
  project?: { error: string };
}

const ALL_APIS = [...new Set([...STACK_APIS, ...BOOTSTRAP_APIS])];

function run(fixture: Fixture, args: string[] = ['--project', 'my-project'], withGcloud = true) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'preflight-'));
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'gcloud'), STAND_IN, { mode: 0o755 });
  const put = (name: string, text: string) => fs.writeFileSync(path.join(dir, name), text);
  put('account', `${fixture.account ?? 'ops@example.com'}\n`);
  if (fixture.project) put('project.err', fixture.project.error);
  else put('project', 'my-project\n');
  put('services', `${(fixture.services ?? ALL_APIS).join('\n')}\n`);
  const db = fixture.database ?? { name: 'projects/my-project/databases/(default)', type: 'DATASTORE_MODE', locationId: 'eur3' };
  if ('error' in db) put('database.err', String(db.error));
  else put('database', JSON.stringify(db));
  put('policy', JSON.stringify({ bindings: fixture.policy ?? [{ role: 'roles/owner', members: ['user:ops@example.com'] }] }));
  const adc = fixture.adc === undefined ? { type: 'authorized_user', quota_project_id: 'my-project' } : fixture.adc;
  if (adc !== null) put('application_default_credentials.json', JSON.stringify(adc));
  const env: NodeJS.ProcessEnv = {
    // Without: a PATH with nothing on it (this machine may have a real gcloud in /usr/bin).
    PATH: withGcloud ? `${bin}:/usr/bin:/bin` : path.join(dir, 'empty'),
    HOME: dir,
    CLOUDSDK_CONFIG: dir,
    FIXTURE: dir,
  };
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'preflight.js'), ...args], { env, encoding: 'utf8' });
  const calls = fs.existsSync(path.join(dir, 'calls')) ? fs.readFileSync(path.join(dir, 'calls'), 'utf8').trim().split('\n') : [];
  fs.rmSync(dir, { recursive: true, force: true });
  const lines = r.stdout.trim().split('\n');
  return { status: r.status, stderr: r.stderr, lines, problems: lines.filter((l) => l.startsWith('PROBLEM')), calls };
}

beforeAll(() => ensureBuilt());

test('a ready project: every check ok, exit 0, and exactly the gcloud commands documented', () => {
  const r = run({});
  expect(r.problems).toEqual([]);
  expect(r.status).toBe(0);
  expect(r.lines[r.lines.length - 1]).toBe('preflight: nothing in the way of terraform apply');
  expect(r.lines).toEqual(
    expect.arrayContaining([
      'ok      gcloud account ops@example.com',
      'ok      database (default) is in Datastore mode, location eur3',
      'ok      user:ops@example.com is owner of my-project',
    ]),
  );
  expect(r.calls).toEqual([
    'config get-value account',
    'projects describe my-project --format=value(projectId)',
    'services list --enabled --project=my-project --format=value(config.name)',
    'firestore databases describe --database=(default) --project=my-project --format=json',
    'projects get-iam-policy my-project --format=json',
  ]);
});

test('each problem is one line that says what to do, and the exit code is 1', () => {
  const r = run({
    adc: { type: 'authorized_user' },
    services: ['cloudresourcemanager.googleapis.com'],
    database: { type: 'FIRESTORE_NATIVE', locationId: 'nam5' },
    policy: [{ role: 'roles/editor', members: ['user:ops@example.com'] }],
  });
  expect(r.status).toBe(1);
  expect(r.problems).toEqual([
    expect.stringMatching(/user credentials without a quota project.*gcloud auth application-default set-quota-project my-project/),
    expect.stringMatching(
      /serviceusage\.googleapis\.com is not enabled.*gcloud services enable serviceusage\.googleapis\.com --project=my-project/,
    ),
    expect.stringMatching(/in FIRESTORE_NATIVE mode, not Datastore mode/),
    ...REQUIRED_ROLES.map((role) => expect.stringContaining(`lacks ${role} on my-project`) as unknown as string),
  ]);
  expect(r.lines).toContainEqual(expect.stringMatching(/^note +APIs the apply enables/));
  expect(r.lines[r.lines.length - 1]).toBe(`preflight: ${3 + REQUIRED_ROLES.length} problem(s)`);
});

test('the roles a service account holds count as the roles of serviceAccount:<email>', () => {
  const sa = 'deployer@my-project.iam.gserviceaccount.com';
  const r = run({
    account: sa,
    adc: { type: 'service_account' },
    policy: REQUIRED_ROLES.map((role) => ({ role, members: [`serviceAccount:${sa}`] })),
  });
  expect(r.problems).toEqual([]);
  expect(r.lines).toContain(`ok      serviceAccount:${sa} holds every role the apply needs`);
});

test('the database: missing is a problem unless the apply creates it; existing is a problem when it would', () => {
  const missing = {
    error: 'ERROR: (gcloud.firestore.databases.describe) NOT_FOUND: Project my-project or database (default) does not exist.',
  };
  expect(run({ database: missing }).problems).toEqual([expect.stringMatching(/does not exist: set create_database = true/)]);
  expect(run({ database: missing }, ['--project', 'my-project', '--create-database']).problems).toEqual([]);
  expect(run({}, ['--project', 'my-project', '--create-database']).problems).toEqual([
    expect.stringMatching(/exists already: set create_database = false/),
  ]);
});

test('no Application Default Credentials, an unreadable project, no gcloud: one clear line each', () => {
  expect(run({ adc: null }).problems).toEqual([
    expect.stringMatching(/no Application Default Credentials .* gcloud auth application-default login/),
  ]);
  const denied = run({ project: { error: 'ERROR: (gcloud.projects.describe) PERMISSION_DENIED: caller does not have permission' } });
  expect(denied.problems).toEqual([expect.stringMatching(/project my-project cannot be read with this account: .*PERMISSION_DENIED/)]);
  expect(denied.status).toBe(1);
  const none = run({}, ['--project', 'my-project'], false);
  expect(none.problems).toEqual([expect.stringMatching(/gcloud is not installed or not on PATH/)]);
  expect(none.status).toBe(1);
});

test('a usage error exits 2 with the usage', () => {
  const r = run({}, ['--project']);
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/usage: npm run preflight -- --project/);
});

test('the APIs it knows are the APIs terraform/apis.tf enables', () => {
  const text = fs.readFileSync(path.join(ROOT, 'terraform', 'apis.tf'), 'utf8');
  const inTerraform = [...text.matchAll(/"([a-z]+\.googleapis\.com)"/g)].map((m) => m[1]).filter((a) => a !== 'compute.googleapis.com');
  expect([...STACK_APIS].sort()).toEqual([...new Set(inTerraform)].sort());
});
