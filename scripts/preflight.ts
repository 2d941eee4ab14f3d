/**
 * `npm run preflight -- --project P [--database ID] [--create-database] [--custom-domain]`: what can
 * be checked with gcloud before the first `terraform apply` (docs/deploy.md#before-the-first-apply).
 * One line per finding: `ok`, `note` (Terraform takes care of it) or `PROBLEM` (with what to do);
 * exit code 1 when there is a problem, 2 on a usage error.
 *
 * Checks: the gcloud account; Application Default Credentials (what Terraform uses) with a quota
 * project when they are user credentials; the APIs Terraform needs enabled before it can enable the
 * others; the database: exists (or not, with --create-database), Datastore mode, its location; the
 * caller's roles on the project (grants through groups cannot be seen here and are reported as
 * missing: check them by hand).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const PREFLIGHT_USAGE = 'usage: npm run preflight -- --project <project id> [--database <id>] [--create-database] [--custom-domain]';

export interface PreflightOptions {
  project: string;
  database: string;
  createDatabase: boolean;
  customDomain: boolean;
}

export class PreflightUsageError extends Error {}

/**
 * @example
 * parsePreflightOptions(['--project', 'my-project']); // { project: 'my-project', database: '(default)', … }
 */
export function parsePreflightOptions(argv: string[]): PreflightOptions {
  const options: PreflightOptions = { project: '', database: '(default)', createDatabase: false, customDomain: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new PreflightUsageError(`${arg} needs a value\n${PREFLIGHT_USAGE}`);
      return v;
    };
    if (arg === '--project') options.project = value();
    else if (arg === '--database') options.database = value();
    else if (arg === '--create-database') options.createDatabase = true;
    else if (arg === '--custom-domain') options.customDomain = true;
    else throw new PreflightUsageError(`unknown argument ${arg}\n${PREFLIGHT_USAGE}`);
  }
  if (!/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(options.project))
    throw new PreflightUsageError(`--project needs a project id\n${PREFLIGHT_USAGE}`);
  return options;
}

/** APIs that must be on before Terraform can enable the rest (google_project_service calls them). */
export const BOOTSTRAP_APIS = ['serviceusage.googleapis.com', 'cloudresourcemanager.googleapis.com'];

/** What terraform/apis.tf enables (kept equal by test/scripts/preflight.test.ts). */
export const STACK_APIS = [
  'cloudfunctions.googleapis.com',
  'run.googleapis.com',
  'cloudbuild.googleapis.com',
  'artifactregistry.googleapis.com',
  'pubsub.googleapis.com',
  'cloudscheduler.googleapis.com',
  'datastore.googleapis.com',
  'firestore.googleapis.com',
  'storage.googleapis.com',
  'iam.googleapis.com',
  'cloudresourcemanager.googleapis.com',
  'logging.googleapis.com',
  'monitoring.googleapis.com',
];

/**
 * Roles that together let the caller apply terraform/ (docs/deploy.md#the-callers-roles);
 * roles/owner covers them all.
 */
export const REQUIRED_ROLES = [
  'roles/serviceusage.serviceUsageAdmin',
  'roles/resourcemanager.projectIamAdmin',
  'roles/iam.serviceAccountAdmin',
  'roles/iam.serviceAccountUser',
  'roles/cloudfunctions.admin',
  'roles/run.admin',
  'roles/pubsub.admin',
  'roles/cloudscheduler.admin',
  'roles/datastore.owner',
  'roles/storage.admin',
  'roles/logging.configWriter',
  'roles/monitoring.editor',
];

export type Finding = { level: 'ok' | 'note' | 'PROBLEM'; text: string };

/** Runs gcloud; resolves with its stdout, or with the reason it failed. */
type Gcloud = (args: string[]) => { ok: true; out: string } | { ok: false; err: string };

const realGcloud: Gcloud = (args) => {
  try {
    return { ok: true, out: execFileSync('gcloud', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }) };
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') return { ok: false, err: 'gcloud is not installed or not on PATH' };
    return { ok: false, err: (e.stderr ?? e.message).trim().split('\n').slice(-1)[0] ?? e.message };
  }
};

/** Where gcloud keeps Application Default Credentials (CLOUDSDK_CONFIG moves it). */
function adcFile(env: NodeJS.ProcessEnv): string {
  if (env.GOOGLE_APPLICATION_CREDENTIALS) return env.GOOGLE_APPLICATION_CREDENTIALS;
  return join(env.CLOUDSDK_CONFIG ?? join(homedir(), '.config', 'gcloud'), 'application_default_credentials.json');
}

/**
 * Every check, in order; never throws.
 *
 * @example
 * const findings = runPreflight(parsePreflightOptions(['--project', 'p']));
 */
export function runPreflight(options: PreflightOptions, gcloud: Gcloud = realGcloud, env: NodeJS.ProcessEnv = process.env): Finding[] {
  const findings: Finding[] = [];
  const ok = (text: string) => findings.push({ level: 'ok', text });
  const note = (text: string) => findings.push({ level: 'note', text });
  const problem = (text: string) => findings.push({ level: 'PROBLEM', text });
  const { project } = options;

  const account = gcloud(['config', 'get-value', 'account']);
  const who = account.ok ? account.out.trim() : '';
  if (!account.ok && /not installed/.test(account.err)) {
    problem('gcloud is not installed or not on PATH: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)');
    return findings;
  }
  if (who === '' || who === '(unset)') problem('no gcloud account: run gcloud auth login');
  else ok(`gcloud account ${who}`);

  const adc = adcFile(env);
  if (!existsSync(adc)) {
    problem(`no Application Default Credentials (${adc}), which Terraform uses: run gcloud auth application-default login`);
  } else {
    let creds: { type?: string; quota_project_id?: string } = {};
    try {
      creds = JSON.parse(readFileSync(adc, 'utf8')) as typeof creds;
    } catch {
      problem(`${adc} is not JSON: run gcloud auth application-default login again`);
    }
    if (creds.type === 'authorized_user' && !creds.quota_project_id)
      problem(
        `Application Default Credentials are user credentials without a quota project, so enabling APIs answers 403: ` +
          `run gcloud auth application-default set-quota-project ${project} (or set user_project_override and billing_project in the provider)`,
      );
    else if (creds.type === 'authorized_user')
      ok(`Application Default Credentials: user credentials, quota project ${creds.quota_project_id}`);
    else ok(`Application Default Credentials: ${creds.type ?? 'unknown type'}`);
  }

  const projectAnswer = gcloud(['projects', 'describe', project, '--format=value(projectId)']);
  if (!projectAnswer.ok) {
    problem(`project ${project} cannot be read with this account: ${projectAnswer.err}`);
    return findings;
  }
  ok(`project ${project} exists and is readable`);

  const services = gcloud(['services', 'list', '--enabled', `--project=${project}`, '--format=value(config.name)']);
  if (!services.ok) problem(`cannot list the enabled APIs: ${services.err}`);
  else {
    const enabled = new Set(
      services.out
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean),
    );
    for (const api of BOOTSTRAP_APIS)
      if (!enabled.has(api))
        problem(`API ${api} is not enabled; Terraform needs it to enable the others: gcloud services enable ${api} --project=${project}`);
    const later = [...STACK_APIS, ...(options.customDomain ? ['compute.googleapis.com'] : [])].filter(
      (a) => !enabled.has(a) && !BOOTSTRAP_APIS.includes(a),
    );
    if (later.length > 0) note(`APIs the apply enables (takes a few minutes): ${later.join(', ')}`);
    if (BOOTSTRAP_APIS.every((a) => enabled.has(a))) ok(`APIs Terraform needs first are enabled (${BOOTSTRAP_APIS.join(', ')})`);
  }

  const db = gcloud(['firestore', 'databases', 'describe', `--database=${options.database}`, `--project=${project}`, '--format=json']);
  if (!db.ok) {
    if (/NOT_FOUND|not found|does not exist/i.test(db.err)) {
      if (options.createDatabase) ok(`database ${options.database} does not exist yet; the apply creates it (create_database = true)`);
      else
        problem(
          `database ${options.database} does not exist: set create_database = true (and database_location), or database_id to an existing one`,
        );
    } else problem(`cannot read database ${options.database}: ${db.err}`);
  } else {
    const info = JSON.parse(db.out) as { type?: string; locationId?: string };
    if (options.createDatabase)
      problem(`database ${options.database} exists already: set create_database = false, or the apply fails with 409`);
    if (info.type === 'DATASTORE_MODE') ok(`database ${options.database} is in Datastore mode, location ${info.locationId ?? '?'}`);
    else
      problem(
        `database ${options.database} is in ${info.type ?? 'an unknown'} mode, not Datastore mode: this service needs Firestore in Datastore mode; ` +
          'use another database_id (create_database = true) — a database in use cannot change its mode',
      );
  }

  const policy = gcloud(['projects', 'get-iam-policy', project, '--format=json']);
  if (!policy.ok) problem(`cannot read the IAM policy of ${project} (needs resourcemanager.projects.getIamPolicy): ${policy.err}`);
  else if (who !== '' && who !== '(unset)') {
    const bindings = (JSON.parse(policy.out) as { bindings?: { role: string; members?: string[] }[] }).bindings ?? [];
    const member = who.endsWith('.gserviceaccount.com') ? `serviceAccount:${who}` : `user:${who}`;
    const held = new Set(bindings.filter((b) => b.members?.includes(member)).map((b) => b.role));
    if (held.has('roles/owner')) ok(`${member} is owner of ${project}`);
    else {
      const roles = [...REQUIRED_ROLES, ...(options.customDomain ? ['roles/compute.loadBalancerAdmin'] : [])];
      const missing = roles.filter((r) => !held.has(r));
      if (missing.length === 0) ok(`${member} holds every role the apply needs`);
      for (const role of missing)
        problem(
          `${member} lacks ${role} on ${project} (directly; a grant through a group is not visible here): ` +
            `gcloud projects add-iam-policy-binding ${project} --member=${member} --role=${role}`,
        );
    }
  }
  return findings;
}

function main(): void {
  let options: PreflightOptions;
  try {
    options = parsePreflightOptions(process.argv.slice(2));
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(2);
  }
  const findings = runPreflight(options);
  for (const f of findings) console.log(`${f.level.padEnd(7)} ${f.text}`);
  const problems = findings.filter((f) => f.level === 'PROBLEM').length;
  console.log(problems === 0 ? 'preflight: nothing in the way of terraform apply' : `preflight: ${problems} problem(s)`);
  process.exit(problems === 0 ? 0 : 1);
}

if (require.main === module) main();
