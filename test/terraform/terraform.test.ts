/**
 * The Terraform deployment checked against the code it deploys, offline. The google provider cannot
 * be downloaded here, so `terraform init/validate/plan` never run; what can be checked without it
 * is: formatting, and the parsed HCL against the entry points functions/index.ts registers, the
 * variables lib/setup/config.ts parses, the kill query lib/store/datastoreStore.ts runs, and the package
 * scripts/package-deploy.js assembles.
 *
 * functions/index.ts is read as text, not imported: importing it registers the functions and parses
 * the configuration from this process's environment.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from '@cdktf/hcl2json';
import { loadConfig } from '../../lib/setup/config';
import { derivedDigestKey } from '../../lib/setup/log';
import { type ConfigVariable, SETTINGS, type SettingRow, setting } from '../../lib/setup/settings';
import { BUILT_IN_PROVIDER, checkAgainstSchema, declarations, providerOf, type SchemaExtract } from '../support/terraformSchema';

const ROOT = path.resolve(__dirname, '..', '..');
const TF_DIR = path.join(ROOT, 'terraform');
const EXPECTED_ENTRY_POINTS = ['sessionApi', 'killSessionByUser', 'startClearSessions'];
/** The settings Terraform sets; the others are for local use (memory store, a local key file) or set by the platform. */
const ROWS: readonly SettingRow[] = SETTINGS;
const DEPLOYED = ROWS.filter((row) => row.scope === 'deploy');
const NOT_DEPLOYED = ROWS.filter((row) => row.scope !== 'deploy').map((row) => row.name);

type Json = Record<string, unknown>;

interface Stack {
  resources: Map<string, Json>; // "type.name" -> body
  variables: Map<string, Json>;
  outputs: Map<string, Json>;
  data: Map<string, Json>;
  locals: Json;
}

let stack: Stack;
let parsedFiles: { file: string; hcl: Json }[];

const SCHEMA_FILE = path.join(TF_DIR, 'schema', 'provider-schemas.json');

async function parseTerraformFiles(): Promise<{ file: string; hcl: Json }[]> {
  const files = fs
    .readdirSync(TF_DIR)
    .filter((f) => f.endsWith('.tf'))
    .sort();
  return Promise.all(
    files.map(async (file) => ({ file, hcl: (await parse(file, fs.readFileSync(path.join(TF_DIR, file), 'utf8'))) as Json })),
  );
}

async function loadStack(): Promise<Stack> {
  const s: Stack = { resources: new Map(), variables: new Map(), outputs: new Map(), data: new Map(), locals: {} };
  const files = fs
    .readdirSync(TF_DIR)
    .filter((f) => f.endsWith('.tf'))
    .sort();
  const put = (map: Map<string, Json>, key: string, bodies: unknown, file: string) => {
    if (map.has(key)) throw new Error(`${key} is declared twice (again in ${file})`);
    map.set(key, (bodies as Json[])[0]);
  };
  for (const file of files) {
    const hcl = (await parse(file, fs.readFileSync(path.join(TF_DIR, file), 'utf8'))) as Json;
    for (const [type, byName] of Object.entries((hcl.resource ?? {}) as Record<string, Json>)) {
      for (const [name, bodies] of Object.entries(byName)) put(s.resources, `${type}.${name}`, bodies, file);
    }
    for (const [type, byName] of Object.entries((hcl.data ?? {}) as Record<string, Json>)) {
      for (const [name, bodies] of Object.entries(byName)) put(s.data, `${type}.${name}`, bodies, file);
    }
    for (const [name, bodies] of Object.entries((hcl.variable ?? {}) as Json)) put(s.variables, name, bodies, file);
    for (const [name, bodies] of Object.entries((hcl.output ?? {}) as Json)) put(s.outputs, name, bodies, file);
    for (const block of (hcl.locals ?? []) as Json[]) {
      for (const [name, value] of Object.entries(block)) {
        if (name in s.locals) throw new Error(`local.${name} is declared twice`);
        s.locals[name] = value;
      }
    }
  }
  return s;
}

// --- Small helpers over hcl2json's shape: blocks are arrays, expressions are "${...}" strings -------

function ofType(type: string): [string, Json][] {
  return [...stack.resources].filter(([key]) => key.startsWith(`${type}.`)).map(([key, body]) => [key.slice(type.length + 1), body]);
}

function resource(type: string, name: string): Json {
  const body = stack.resources.get(`${type}.${name}`);
  if (!body) throw new Error(`${type}.${name} is not declared`);
  return body;
}

function nested(body: Json, ...path: string[]): Json {
  let current: Json = body;
  for (const key of path) {
    const blocks = current[key] as Json[] | undefined;
    if (!Array.isArray(blocks) || blocks.length !== 1) throw new Error(`expected exactly one ${key} block`);
    current = blocks[0];
  }
  return current;
}

/** Replaces a whole-expression reference to a local (also `local.x.y`) by its value, repeatedly. */
function deref(value: unknown): unknown {
  for (;;) {
    const m = typeof value === 'string' ? /^\$\{local\.(\w+)((?:\.\w+)*)\}$/.exec(value) : null;
    if (!m) return value;
    let v: unknown = stack.locals[m[1]];
    for (const key of m[2].split('.').filter(Boolean)) v = (v as Json)[key];
    if (v === undefined) throw new Error(`cannot resolve ${String(value)}`);
    value = v;
  }
}

function variableDefault(name: string): unknown {
  const v = stack.variables.get(name);
  if (!v) throw new Error(`var.${name} is not declared`);
  if (!('default' in v)) throw new Error(`var.${name} has no default`);
  return v.default;
}

/**
 * The Terraform variable behind a setting: the one variable its expression in local.session_env_all
 * refers to, directly or through the kill topic's name.
 */
function settingVariable(name: string): string {
  let expr = String((stack.locals.session_env_all as Json)[name]);
  expr = expr.replace(/\$\{google_pubsub_topic\.(\w+)\.name\}/g, (_, topic: string) => String(resource('google_pubsub_topic', topic).name));
  // A name of names.tf: the variable that overrides it (the prefix only fills in its default).
  expr = expr.replace(/\$\{local\.(kind|kill_topic)\}/g, (_, local: string) => `\${var.${local}}`);
  const vars = [...new Set([...expr.matchAll(/\bvar\.(\w+)/g)].map((m) => m[1]))].filter((v) => v !== 'name_prefix');
  if (vars.length !== 1) throw new Error(`${name}: expected one variable in ${expr}, found ${vars.length}`);
  return vars[0];
}

/** Names of the functions (resource names) keyed by entry point. */
function functionsByEntryPoint(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, body] of ofType('google_cloudfunctions2_function')) out[String(nested(body, 'build_config').entry_point)] = name;
  return out;
}

const fnRef = (name: string) => `google_cloudfunctions2_function.${name}`;

/** Keys of an environment_variables value: a literal map, or locals built from literal maps. */
function envKeys(value: unknown, depth = 0): string[] {
  if (depth > 10) throw new Error('environment_variables: locals nest too deep');
  if (value && typeof value === 'object' && !Array.isArray(value)) return Object.keys(value);
  if (typeof value === 'string') {
    const refs = [...value.matchAll(/\blocal\.(\w+)/g)].map((m) => m[1]);
    if (refs.length === 0) throw new Error(`environment_variables: cannot tell the keys of ${value}`);
    return [...new Set(refs.flatMap((r) => envKeys(stack.locals[r], depth + 1)))];
  }
  throw new Error(`environment_variables: unexpected ${JSON.stringify(value)}`);
}

/**
 * Evaluates the value expressions of local.session_env_all for given variable values. Only the
 * forms that file uses are understood; a new form fails here until the evaluator learns it, so no
 * variable reaches the functions unchecked.
 */
function evaluateEnv(vars: Record<string, unknown>): Record<string, string> {
  const all = stack.locals.session_env_all as Json;
  const varValue = (name: string) => {
    const v = name in vars ? vars[name] : variableDefault(name);
    if (v === undefined) throw new Error(`no value for var.${name}`);
    return v;
  };
  const str = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));
  const topicName = () => {
    const m = /^\$\{local\.(\w+)\}$/.exec(String(resource('google_pubsub_topic', 'kill').name));
    if (!m) throw new Error('google_pubsub_topic.kill.name is not a local of names.tf');
    return nameLocal(m[1], varValue);
  };
  const env: Record<string, string> = {};
  for (const [key, expr] of Object.entries(all)) {
    let value: string;
    let m: RegExpExecArray | null;
    if (typeof expr !== 'string') value = String(expr);
    else if (!expr.includes('${')) value = expr;
    else if ((m = /^\$\{var\.(\w+)\}$/.exec(expr))) value = str(varValue(m[1]));
    else if ((m = /^\$\{join\(",", var\.(\w+)\)\}$/.exec(expr))) value = (varValue(m[1]) as string[]).join(',');
    else if ((m = /^\$\{length\(var\.(\w+)\) > 0 \? join\(",", var\.\1\) : ","\}$/.exec(expr))) {
      const list = varValue(m[1]) as string[];
      value = list.length > 0 ? list.join(',') : ',';
    } else if ((m = /^\$\{var\.(\w+) == "\(default\)" \? "" : var\.\1\}$/.exec(expr))) {
      const v = str(varValue(m[1]));
      value = v === '(default)' ? '' : v;
    } else if (expr === '${google_pubsub_topic.kill.name}') value = topicName();
    else if ((m = /^\$\{local\.(kind)\}$/.exec(expr))) value = nameLocal(m[1], varValue);
    else if ((m = /^\$\{var\.(\w+) != "" \? var\.\1 : random_id\.\w+\.hex\}$/.exec(expr))) {
      const v = str(varValue(m[1]));
      value = v !== '' ? v : GENERATED_KEY;
    } else throw new Error(`${key}: the test cannot evaluate ${expr}; teach evaluateEnv this form`);
    // The same filter as local.session_env: empty values are left out.
    if (value !== '') env[key] = value;
  }
  return env;
}

/** Stands for the key random_id generates on the first apply. */
const GENERATED_KEY = 'generated-by-random-id';

/**
 * The value of a name local of names.tf (kind, kill_topic) for given variable values: the exact
 * expressions the file holds, evaluated; another form fails until this learns it.
 */
function nameLocal(name: string, varValue: (v: string) => unknown): string {
  const expr = String(stack.locals[name]);
  const prefix = String(varValue('name_prefix'));
  if (name === 'kill_topic' && expr === '${var.kill_topic != "" ? var.kill_topic : "${var.name_prefix}-kill"}') {
    const v = String(varValue('kill_topic'));
    return v !== '' ? v : `${prefix}-kill`;
  }
  if (
    name === 'kind' &&
    expr ===
      '${var.kind != "" ? var.kind : (var.session_format == "viur" || var.name_prefix == "session" ? "viur-session" : "${var.name_prefix}-session")}'
  ) {
    const v = String(varValue('kind'));
    return v !== '' ? v : varValue('session_format') === 'viur' || prefix === 'session' ? 'viur-session' : `${prefix}-session`;
  }
  throw new Error(`local.${name}: the test cannot evaluate ${expr}`);
}

/**
 * The arguments gcloud gets from a local-exec provisioner: its command runs through sh, as
 * local-exec runs it, with the environment Terraform would pass (self.triggers_replace.* replaced
 * by the given values) and a recording stand-in for the gcloud CLI first on PATH.
 */
function gcloudArgs(provisioner: Json | undefined, values: Record<string, string>): string[] {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'stand-in-gcloud-'));
  try {
    fs.writeFileSync(path.join(bin, 'gcloud'), '#!/bin/sh\nfor a in "$@"; do printf \'%s\\n\' "$a"; done\n', { mode: 0o755 });
    const env = Object.fromEntries(
      Object.entries((provisioner?.environment ?? {}) as Record<string, string>).map(([k, expr]) => {
        const m = /^\$\{self\.triggers_replace\.(\w+)\}$/.exec(expr);
        if (!m || !(m[1] in values)) throw new Error(`${k}: the test cannot evaluate ${expr}`);
        return [k, values[m[1]]];
      }),
    );
    const r = spawnSync('/bin/sh', ['-c', String(provisioner?.command)], {
      env: { PATH: `${bin}:/usr/bin:/bin`, ...env },
      encoding: 'utf8',
    });
    if (r.status !== 0 || r.stderr !== '') throw new Error(`the command failed (${r.status}): ${r.stderr}`);
    return r.stdout.trim().split('\n');
  } finally {
    fs.rmSync(bin, { recursive: true, force: true });
  }
}

/** IAM members of a resource, whichever of member/members it uses. */
function members(body: Json): string[] {
  if (Array.isArray(body.members)) return body.members as string[];
  if (typeof body.member === 'string') return [body.member];
  return [];
}

beforeAll(async () => {
  stack = await loadStack();
  parsedFiles = await parseTerraformFiles();
});

describe('terraform/', () => {
  test('is formatted (terraform fmt -check -recursive)', () => {
    const r = spawnSync('terraform', ['fmt', '-check', '-recursive'], { cwd: TF_DIR, encoding: 'utf8' });
    if (r.error) throw new Error(`terraform is not runnable: ${r.error.message}`);
    expect({ status: r.status, unformatted: r.stdout.trim() }).toEqual({ status: 0, unformatted: '' });
  });

  test('deploys every entry point functions/index.ts registers, once, on the runtime var.nodejs_runtime names', () => {
    const index = fs.readFileSync(path.join(ROOT, 'functions', 'index.ts'), 'utf8');
    const registered = Object.fromEntries(
      [...index.matchAll(/functions\.(http|cloudEvent)\(\s*['"]([\w$]+)['"]/g)].map((m) => [m[2], m[1]]),
    );
    const listed = /ENTRY_POINTS\s*=\s*\[([^\]]*)\]/.exec(index)?.[1].match(/[\w$]+/g) ?? [];
    expect(Object.keys(registered).sort()).toEqual([...EXPECTED_ENTRY_POINTS].sort());
    expect([...listed].sort()).toEqual([...EXPECTED_ENTRY_POINTS].sort());
    expect(registered).toEqual({ sessionApi: 'http', killSessionByUser: 'cloudEvent', startClearSessions: 'http' });

    const fns = ofType('google_cloudfunctions2_function');
    expect(fns).toHaveLength(3);
    const deployed = fns.map(([, body]) => nested(body, 'build_config').entry_point as string);
    expect(deployed.sort()).toEqual([...EXPECTED_ENTRY_POINTS].sort());
    for (const [name, body] of fns) {
      const build = nested(body, 'build_config');
      expect({ name, runtime: build.runtime }).toEqual({ name, runtime: '${var.nodejs_runtime}' });
      // Delivered by pubsub.tf's own push subscription (which can dead-letter), never by Eventarc.
      expect({ name, eventTrigger: body.event_trigger }).toEqual({ name, eventTrigger: undefined });
    }
  });

  test('the runtime is a Node.js line package.json `engines` admits: the newest by default, each one the tests run on', () => {
    const variable = stack.variables.get('nodejs_runtime');
    expect(variable?.default).toBe('nodejs24');
    const condition = String(((variable?.validation ?? []) as Json[])[0]?.condition);
    const allowed = [...condition.matchAll(/"nodejs(\d+)"/g)].map((m) => m[1]);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    const engines = [...pkg.engines.node.matchAll(/\^(\d+)/g)].map((m) => m[1]);
    expect(allowed).toEqual(engines);
    expect(`nodejs${Math.max(...engines.map(Number))}`).toBe(variable?.default);
    // scripts/node-versions.js installs exactly these for the tests.
    const script = fs.readFileSync(path.join(ROOT, 'scripts', 'node-versions.js'), 'utf8');
    expect(/SUPPORTED_MAJORS = \[([^\]]*)\]/.exec(script)?.[1].match(/\d+/g)).toEqual(engines);
  });

  test('every function gets its own service account, and builds from the uploaded archive', () => {
    const fns = ofType('google_cloudfunctions2_function');
    const accounts = fns.map(([, body]) => nested(body, 'service_config').service_account_email);
    expect(new Set(accounts).size).toBe(3);
    for (const account of accounts) expect(account).toMatch(/^\$\{google_service_account\.\w+\.email\}$/);

    const archive = stack.data.get('archive_file.source');
    expect(archive).toBeDefined();
    // Zipped from what the packaging step, run by Terraform itself on every plan, reports.
    expect(archive?.source_dir).toBe('${data.external.package.result.source_dir}');
    const pkgStep = stack.data.get('external.package');
    expect(pkgStep).toMatchObject({ program: ['node', 'scripts/package-deploy.js', '--terraform'], working_dir: '${path.module}/..' });
    // A content hash in the object name: a code change uploads a new object and redeploys.
    expect(resource('google_storage_bucket_object', 'source').name).toMatch(
      /\$\{data\.archive_file\.source\.output_(sha256|md5|base64sha256|sha512)\}/,
    );
    for (const [, body] of fns) {
      const storage = nested(body, 'build_config', 'source', 'storage_source');
      expect(deref(storage.object)).toBe('${google_storage_bucket_object.source.name}');
      expect(deref(storage.bucket)).toBe('${google_storage_bucket.source.name}');
    }
  });

  test('sets only environment variables the configuration parser knows, never the local-only or platform ones', () => {
    const known = ROWS.map((row) => row.name);
    for (const [name, body] of ofType('google_cloudfunctions2_function')) {
      const keys = envKeys(deref(nested(body, 'service_config').environment_variables));
      expect({ name, unknown: keys.filter((k) => !known.includes(k)) }).toEqual({ name, unknown: [] });
      expect({ name, notDeployed: keys.filter((k) => NOT_DEPLOYED.includes(k)) }).toEqual({ name, notDeployed: [] });
      for (const required of ['GOOGLE_CLOUD_PROJECT', 'SESSION_KIND', 'SESSION_KILL_TOPIC']) expect(keys).toContain(required);
    }
    for (const file of fs.readdirSync(TF_DIR).filter((f) => f.endsWith('.tf'))) {
      // Comments may name them (to say why they are absent); configuration may not.
      const text = fs.readFileSync(path.join(TF_DIR, file), 'utf8').replace(/(^|\s)(#|\/\/).*$/gm, '$1');
      for (const name of NOT_DEPLOYED) {
        expect({ file, name, found: new RegExp(`\\b${name}\\b`).test(text) }).toEqual({ file, name, found: false });
      }
    }
  });

  test("sets every variable the table's scope says a deployment sets", () => {
    const keys = envKeys(
      deref(
        nested(resource('google_cloudfunctions2_function', functionsByEntryPoint().sessionApi), 'service_config').environment_variables,
      ),
    );
    expect(DEPLOYED.map((row) => row.name).filter((k) => !keys.includes(k))).toEqual([]);
  });

  test.each(DEPLOYED.map((row) => [row.name, row] as const))("%s: the Terraform variable's default is the table's default", (name, row) => {
    const variable = settingVariable(name);
    if (!('default' in (stack.variables.get(variable) ?? {}))) {
      // A required input (project_id): only a setting without a default may come from one.
      expect({ name, variable, default: row.default }).toEqual({ name, variable, default: undefined });
      return;
    }
    // Through the env functions.tf builds and the parser, so "(default)", "" and [] are read as a deployment reads them.
    const deployed = setting(evaluateEnv({ project_id: 'p1' }), name as ConfigVariable);
    if (name === 'SESSION_LOG_DIGEST_KEY') {
      // The one setting a deployment never leaves at its default: the derived key is not secret, so Terraform generates one.
      expect({ name, variable, default: deployed }).toEqual({ name, variable, default: GENERATED_KEY });
      return;
    }
    expect({ name, variable, default: deployed }).toEqual({ name, variable, default: row.default });
  });

  test.each(DEPLOYED.filter((row) => row.type === 'integer' || row.type === 'enum').map((row) => [row.name, row] as const))(
    "%s: the Terraform variable's validation admits what the table admits",
    (name, row) => {
      const variable = settingVariable(name);
      const validations = (stack.variables.get(variable)?.validation ?? []) as Json[];
      const v = `var\\.${variable}`;
      if (row.type === 'integer') {
        const found = validations.map((b) => {
          const m = new RegExp(`^\\$\\{${v} >= (\\d+) && ${v} <= (\\d+) && floor\\(${v}\\) == ${v}\\}$`).exec(String(b.condition));
          const said = /from (\d+) to (\d+)/.exec(String(b.error_message));
          return m && { min: Number(m[1]), max: Number(m[2]), message: said?.slice(1).map(Number) };
        });
        // The function's timeout can make a deployment's bound tighter; the table says where and why.
        const max = row.deployMax ?? row.max;
        const expected = [{ min: row.min, max, message: [row.min, max] }];
        expect({ name, variable, bounds: found.filter(Boolean) }).toEqual({ name, variable, bounds: expected });
      } else if (row.type === 'enum') {
        const found = validations.map((b) => new RegExp(`^\\$\\{contains\\(\\[([^\\]]*)\\], ${v}\\)\\}$`).exec(String(b.condition)));
        const values = found.filter((m) => m !== null).map((m) => (JSON.parse(`[${m[1]}]`) as string[]).sort());
        expect({ name, variable, values }).toEqual({ name, variable, values: [[...row.values].sort()] });
      }
    },
  );

  test("the variables' defaults produce exactly the parser's defaults", () => {
    const env = evaluateEnv({ project_id: 'p1' });
    // Except the digest key, which Terraform generates (the test above).
    expect(loadConfig(env)).toEqual({ ...loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' }), logDigestKey: GENERATED_KEY });
    expect(loadConfig({ ...env, SESSION_LOG_DIGEST_KEY: undefined }).logDigestKey).toBe(derivedDigestKey('p1'));
  });

  test('terraform.tfvars.example shows the defaults, and sets only declared variables', async () => {
    const example = (await parse('terraform.tfvars', fs.readFileSync(path.join(TF_DIR, 'terraform.tfvars.example'), 'utf8'))) as Json;
    expect(Object.keys(example).filter((k) => !stack.variables.has(k))).toEqual([]);
    const { project_id: projectId, ...rest } = example;
    expect(typeof projectId).toBe('string');
    for (const [name, value] of Object.entries(rest)) expect({ name, value }).toEqual({ name, value: variableDefault(name) });
    for (const name of [
      'session_absolute_lifetime_seconds',
      'session_max_data_keys',
      'session_max_sessions_per_user',
      'session_read_cache_ms',
    ]) {
      expect(Object.keys(rest)).toContain(name);
    }
  });

  test('non-default variable values reach the parser as meant', () => {
    const env = evaluateEnv({
      project_id: 'p1',
      database_id: 'sessions-db',
      namespace: 'ns1',
      kind: 'my-session',
      session_cookie_persistent: true,
      session_same_site: 'off',
      persistent_fields_on_login: [],
      persistent_fields_on_logout: ['language', 'cart'],
      admin_principals: ['a@p1.iam.gserviceaccount.com', 'b@p1.iam.gserviceaccount.com'],
      admin_audience: 'https://sessions.example.com',
      allowed_origins: ['https://www.example.com'],
      kill_topic: 'other-kill',
      cleanup_budget_seconds: 900,
      session_absolute_lifetime_seconds: 0,
      session_max_data_keys: 50,
      session_max_sessions_per_user: 3,
      session_read_cache_ms: 250,
    });
    expect(loadConfig(env)).toMatchObject({
      projectId: 'p1',
      databaseId: 'sessions-db',
      namespace: 'ns1',
      kind: 'my-session',
      killTopic: 'other-kill',
      session: {
        persistentFieldsOnLogin: [],
        persistentFieldsOnLogout: ['language', 'cart'],
        cookie: { persistent: true, sameSite: false },
        absoluteLifetimeSeconds: 0,
        maxDataKeys: 50,
        maxSessionsPerUser: 3,
      },
      readCacheMs: 250,
      admin: { audience: 'https://sessions.example.com', principals: ['a@p1.iam.gserviceaccount.com', 'b@p1.iam.gserviceaccount.com'] },
      allowedOrigins: ['https://www.example.com'],
      deletion: { cleanupBudgetSeconds: 900 },
    });
  });

  test('creates the kill topic the functions and the publisher use, and lets every publisher publish', () => {
    const topic = resource('google_pubsub_topic', 'kill');
    expect(topic.name).toBe('${local.kill_topic}');
    expect(nameLocal('kill_topic', variableDefault)).toBe(loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' }).killTopic);
    expect(nameLocal('kill_topic', variableDefault)).toBe('session-kill');
    expect((stack.locals.session_env_all as Json).SESSION_KILL_TOPIC).toBe('${google_pubsub_topic.kill.name}');

    const publishers = ofType('google_pubsub_topic_iam_member')
      .map(([, body]) => body)
      .filter((b) => b.topic === '${google_pubsub_topic.kill.name}' && b.role === 'roles/pubsub.publisher')
      .flatMap(members);
    // The API (POST /sessions/kill), the kill function (continuations), the cleanup (its backlog).
    for (const [, body] of ofType('google_cloudfunctions2_function')) {
      const account = nested(body, 'service_config').service_account_email as string;
      expect(publishers).toContain(`serviceAccount:${account}`);
    }
    expect(publishers).toContain('${each.value}');
    const extra = ofType('google_pubsub_topic_iam_member').find(([, b]) => members(b).includes('${each.value}'));
    expect(extra?.[1].for_each).toBe('${toset(var.kill_publishers)}');
  });

  test('only sessionApi is public; the cleanup answers only the scheduler, the kill function only its push identity', () => {
    const byEntry = functionsByEntryPoint();
    const scheduler = nested(resource('google_cloud_scheduler_job', 'cleanup'), 'http_target', 'oidc_token')
      .service_account_email as string;
    const push = nested(resource('google_pubsub_subscription', 'kill_push'), 'push_config', 'oidc_token').service_account_email as string;
    expect(scheduler).not.toBe(push);

    const invokerTypes = [
      'google_cloud_run_service_iam_binding',
      'google_cloud_run_service_iam_member',
      'google_cloud_run_v2_service_iam_binding',
      'google_cloud_run_v2_service_iam_member',
    ];
    const invokers = invokerTypes
      .flatMap((t) => ofType(t).map(([name, body]) => ({ type: t, name, body })))
      .filter((i) => i.body.role === 'roles/run.invoker');
    const invokersOf = (entry: string) =>
      invokers.filter((i) => String(i.body.service ?? i.body.name).startsWith(`\${${fnRef(byEntry[entry])}.`));
    const expected: Record<string, string[]> = {
      sessionApi: ['allUsers'],
      startClearSessions: [`serviceAccount:${scheduler}`],
      killSessionByUser: [`serviceAccount:${push}`],
    };
    for (const entry of EXPECTED_ENTRY_POINTS) {
      const found = invokersOf(entry);
      expect({ entry, members: found.flatMap((i) => members(i.body)) }).toEqual({ entry, members: expected[entry] });
      // Authoritative for the role on that service, so no other invoker survives an apply.
      expect({ entry, types: found.map((i) => i.type) }).toEqual({ entry, types: [expect.stringMatching(/_iam_binding$/)] });
    }
    expect(invokers).toHaveLength(3);

    // No public principal anywhere else, and no invoker grant that spans services.
    for (const [key, body] of stack.resources) {
      const all = members(body);
      if (all.some((m) => m === 'allUsers' || m === 'allAuthenticatedUsers'))
        expect(key).toBe(`google_cloud_run_service_iam_binding.${invokersOf('sessionApi')[0].name}`);
      if (key.startsWith('google_project_iam_') || key.startsWith('google_cloudfunctions2_function_iam_'))
        expect({ key, role: body.role }).not.toEqual({ key, role: 'roles/run.invoker' });
    }
  });

  test('grants no broad roles: project-level roles are Datastore access for the runtimes and the build role only', () => {
    const roles = [...stack.resources]
      .filter(([key]) => /_iam_(member|binding)\./.test(key))
      .map(([key, body]) => ({ key, role: body.role as string }));
    for (const { key, role } of roles)
      expect({ key, role }).not.toEqual({ key, role: expect.stringMatching(/^roles\/(owner|editor|viewer)$/) });
    expect(ofType('google_project_iam_binding')).toEqual([]);
    expect(ofType('google_project_iam_policy')).toEqual([]);
    const projectGrants = ofType('google_project_iam_member').map(([, b]) => ({ role: b.role, member: b.member }));
    for (const g of projectGrants) expect(['roles/datastore.user', 'roles/run.builder']).toContain(g.role);
    for (const [, body] of ofType('google_cloudfunctions2_function')) {
      const account = `serviceAccount:${String(nested(body, 'service_config').service_account_email)}`;
      expect(projectGrants).toContainEqual({ role: 'roles/datastore.user', member: account });
      // The build identity is not a runtime identity.
      const accountResource = (expr: unknown) => /google_service_account\.(\w+)\./.exec(String(expr))?.[1];
      expect(accountResource(nested(body, 'build_config').service_account)).toBeDefined();
      expect(accountResource(nested(body, 'build_config').service_account)).not.toBe(accountResource(account));
    }
  });

  test("the scheduler calls the cleanup function's URL with an OIDC token for that URL", () => {
    const cleanup = fnRef(functionsByEntryPoint().startClearSessions);
    const job = resource('google_cloud_scheduler_job', 'cleanup');
    const target = nested(job, 'http_target');
    const urlOfCleanup = new RegExp(`^\\$\\{${cleanup.replace(/\./g, '\\.')}\\.(service_config\\[0\\]\\.uri|url)\\}$`);
    expect(deref(target.uri)).toMatch(urlOfCleanup);
    expect(deref(nested(target, 'oidc_token').audience)).toMatch(urlOfCleanup);
    expect(target.http_method).toBe('POST');
    expect(job.retry_config).toBeDefined();
    expect(variableDefault('cleanup_schedule')).toBe('0 3 * * *');
    expect(variableDefault('cleanup_time_zone')).toBe('Etc/UTC');

    const deadline = Number(/^(\d+)s$/.exec(String(job.attempt_deadline))?.[1]);
    expect(deadline).toBeLessThanOrEqual(1800);
    const timeout = Number(
      nested(resource('google_cloudfunctions2_function', functionsByEntryPoint().startClearSessions), 'service_config').timeout_seconds,
    );
    expect(timeout).toBeGreaterThanOrEqual(deadline);
    expect(Number(variableDefault('cleanup_budget_seconds'))).toBeLessThan(deadline);
    expect(Number(variableDefault('cleanup_budget_seconds'))).toBe(
      loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' }).deletion.cleanupBudgetSeconds,
    );
  });

  test('kill messages are pushed to the kill function with a dead-letter path', () => {
    const kill = fnRef(functionsByEntryPoint().killSessionByUser);
    const sub = resource('google_pubsub_subscription', 'kill_push');
    expect(sub.topic).toBe('${google_pubsub_topic.kill.id}');
    const pushConfig = nested(sub, 'push_config');
    const endpoint = String(pushConfig.push_endpoint).replace(/\$\{local\.(\w+)\}/g, (_, name: string) =>
      String(deref(`\${local.${name}}`)),
    );
    const serviceUrl = `\${${kill}.service_config[0].uri}`;
    expect(endpoint.startsWith(serviceUrl)).toBe(true);
    // functions-framework turns a raw push into a CloudEvent only when the path names the topic.
    expect(endpoint.slice(serviceUrl.length)).toBe('/projects/${var.project_id}/topics/${google_pubsub_topic.kill.name}');
    expect(deref(nested(pushConfig, 'oidc_token').audience)).toBe(serviceUrl);
    const timeout = Number(
      nested(resource('google_cloudfunctions2_function', functionsByEntryPoint().killSessionByUser), 'service_config').timeout_seconds,
    );
    expect(Number(sub.ack_deadline_seconds)).toBeGreaterThan(timeout);
    expect(sub.retry_policy).toBeDefined();

    const deadLetter = nested(sub, 'dead_letter_policy');
    expect(deadLetter.dead_letter_topic).toBe('${google_pubsub_topic.kill_dead_letter.id}');
    expect(deadLetter.max_delivery_attempts).toBe('${var.kill_max_delivery_attempts}');
    const attempts = Number(variableDefault('kill_max_delivery_attempts'));
    expect(attempts).toBeGreaterThanOrEqual(5);
    expect(attempts).toBeLessThanOrEqual(100);
    // Something must hold dead letters, or they vanish.
    expect(ofType('google_pubsub_subscription').some(([, b]) => b.topic === '${google_pubsub_topic.kill_dead_letter.id}')).toBe(true);
    // The Pub/Sub service agent forwards to the dead-letter topic and acknowledges on the source.
    const agent = '${local.pubsub_service_agent}';
    expect(String(stack.locals.pubsub_service_agent)).toMatch(
      /^serviceAccount:service-\$\{data\.google_project\.\w+\.number\}@gcp-sa-pubsub\.iam\.gserviceaccount\.com$/,
    );
    expect(ofType('google_pubsub_topic_iam_member').map(([, b]) => b)).toContainEqual(
      expect.objectContaining({ topic: '${google_pubsub_topic.kill_dead_letter.name}', role: 'roles/pubsub.publisher', member: agent }),
    );
    expect(ofType('google_pubsub_subscription_iam_member').map(([, b]) => b)).toContainEqual(
      expect.objectContaining({
        subscription: '${google_pubsub_subscription.kill_push.name}',
        role: 'roles/pubsub.subscriber',
        member: agent,
      }),
    );
  });

  test('Firestore: Datastore mode, the composite indexes of the kill query and of the live-session listing, a TTL policy on expiresAt', () => {
    const defaults = loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' });
    expect(nameLocal('kind', variableDefault)).toBe(defaults.kind);
    expect(variableDefault('database_id')).toBe('(default)');
    expect(variableDefault('create_database')).toBe(false);
    const db = resource('google_firestore_database', 'sessions');
    expect(db).toMatchObject({ type: 'DATASTORE_MODE', name: '${var.database_id}', count: '${var.create_database ? 1 : 0}' });

    const indexes = ofType('google_firestore_index');
    expect(indexes.map(([name]) => name).sort()).toEqual(['kill_by_user', 'live_by_user']);
    const common = {
      api_scope: 'DATASTORE_MODE_API',
      query_scope: 'COLLECTION_GROUP',
      collection: '${local.kind}',
      database: '${var.database_id}',
    };
    expect(resource('google_firestore_index', 'kill_by_user')).toMatchObject({
      ...common,
      fields: [
        { field_path: 'user', order: 'ASCENDING' },
        { field_path: 'createdAt', order: 'ASCENDING' },
      ],
    });
    expect(resource('google_firestore_index', 'live_by_user')).toMatchObject({
      ...common,
      fields: [
        { field_path: 'user', order: 'ASCENDING' },
        { field_path: 'expiresAt', order: 'DESCENDING' },
      ],
    });
    // The queries those fields serve: equality on user, then range and order on createdAt (the kill)
    // and on expiresAt, descending (the live sessions of a user).
    const store = fs.readFileSync(path.join(ROOT, 'lib', 'store', 'datastoreStore.ts'), 'utf8');
    expect(store).toMatch(/PropertyFilter\(\s*['"]user['"]\s*,\s*['"]=['"]/);
    expect(store).toMatch(/PropertyFilter\(\s*['"]createdAt['"]\s*,\s*['"]<=?['"]/);
    expect(store).toMatch(/\.order\(\s*['"]createdAt['"]\s*\)/);
    expect(store).toMatch(/PropertyFilter\(\s*['"]expiresAt['"]\s*,\s*['"]>['"]/);
    expect(store).toMatch(/\.order\(\s*['"]expiresAt['"]\s*,\s*\{\s*descending:\s*true\s*\}\s*\)/);
    // The API's new revision goes live only once the index it queries exists.
    expect(resource('google_cloudfunctions2_function', 'api').depends_on).toContain('${google_firestore_index.live_by_user}');

    // google_firestore_field cannot set a TTL on a Datastore-mode database (datastore.tf says why).
    expect(ofType('google_firestore_field')).toEqual([]);
    const ttl = resource('terraform_data', 'expires_at_ttl');
    expect(ttl.triggers_replace).toEqual({
      project: '${var.project_id}',
      database: '${var.database_id}',
      kind: '${local.kind}',
      field: 'expiresAt',
    });
    expect(store).toMatch(/['"]expiresAt['"]\s*,\s*['"]<['"]/);
  });

  test('no TTL policy in viur format: a ViUR app stores lastseen as a double, which a TTL policy cannot act on', () => {
    const ttl = resource('terraform_data', 'expires_at_ttl');
    expect(ttl.count).toBe('${var.session_format == "native" && var.events_topic == "" ? 1 : 0}');
  });

  test('no TTL policy with session events on: only the cleanup removes expired sessions, so each gets its expired event', () => {
    // The same count expression as above: its second operand is the events switch (docs/events.md).
    expect(String(resource('terraform_data', 'expires_at_ttl').count)).toContain('var.events_topic == ""');
    expect(resource('google_pubsub_topic', 'events').count).toBe('${local.events_enabled ? 1 : 0}');
    expect(stack.locals.events_enabled).toBe('${var.events_topic != ""}');
    // Least privilege: publish on that topic only, for the three functions' own accounts.
    const grant = resource('google_pubsub_topic_iam_member', 'events_publisher');
    expect({ role: grant.role, topic: grant.topic, member: grant.member, for_each: grant.for_each }).toEqual({
      role: 'roles/pubsub.publisher',
      topic: '${google_pubsub_topic.events[0].name}',
      member: 'serviceAccount:${each.value}',
      for_each: '${local.events_publishers}',
    });
    expect(String(stack.locals.events_publishers).match(/google_service_account\.(\w+)\.email/g)).toEqual([
      'google_service_account.api.email',
      'google_service_account.kill.email',
      'google_service_account.cleanup.email',
    ]);
  });

  test('the TTL step runs the gcloud command that enables (and on destroy disables) the policy on the kind, in the database', () => {
    const ttl = resource('terraform_data', 'expires_at_ttl');
    const triggers = ttl.triggers_replace as Record<string, string>;
    const provisioners = (ttl.provisioner as Record<string, Json[]>)['local-exec'];
    expect(provisioners).toHaveLength(2);
    const [create, destroy] = [provisioners.find((p) => p.when === undefined), provisioners.find((p) => p.when === '${destroy}')];
    expect(destroy?.on_failure).toBe('${continue}');

    const values = { project: 'p1', database: '(default)', kind: 'viur-session', field: triggers.field };
    const common = [
      'firestore',
      'fields',
      'ttls',
      'update',
      'expiresAt',
      '--collection-group=viur-session',
      '--database=(default)',
      '--project=p1',
    ];
    expect(gcloudArgs(create, values)).toEqual([...common, '--enable-ttl', '--quiet']);
    expect(gcloudArgs(destroy, values)).toEqual([...common, '--disable-ttl', '--quiet']);
    // The field is the one the session entities carry their expiry in.
    expect(fs.readFileSync(path.join(ROOT, 'lib', 'store', 'datastoreStore.ts'), 'utf8')).toMatch(/\bexpiresAt\b/);
  });

  test('a fresh project: the functions build only after the build grant has had time to take effect, the Pub/Sub agent exists before its grants', () => {
    const wait = resource('time_sleep', 'iam_propagation');
    expect(wait.create_duration).toBe('60s');
    expect(Object.values(wait.triggers as Json).sort()).toEqual([
      '${google_project_iam_member.build_run_builder.member}',
      '${terraform_data.pubsub_service_identity.id}',
    ]);
    const build = resource('google_project_iam_member', 'build_run_builder');
    expect(build.role).toBe('roles/run.builder');
    for (const [name, body] of ofType('google_cloudfunctions2_function')) {
      expect({ name, waits: (body.depends_on as string[]).includes('${time_sleep.iam_propagation}') }).toEqual({ name, waits: true });
      expect(nested(body, 'build_config').service_account).toBe(
        `\${google_service_account.${/google_service_account\.(\w+)\./.exec(String(build.member))?.[1]}.id}`,
      );
    }

    const identity = resource('terraform_data', 'pubsub_service_identity');
    expect(identity.triggers_replace).toEqual({ project: '${var.project_id}', service: 'pubsub.googleapis.com' });
    expect(identity.depends_on).toEqual(['${google_project_service.required}']);
    const create = (identity.provisioner as Record<string, Json[]>)['local-exec'];
    expect(create).toHaveLength(1);
    expect(gcloudArgs(create[0], { project: 'p1', service: 'pubsub.googleapis.com' })).toEqual([
      'beta',
      'services',
      'identity',
      'create',
      '--service=pubsub.googleapis.com',
      '--project=p1',
      '--quiet',
    ]);
    const agentGrants = [...stack.resources].filter(([, b]) => members(b).includes('${local.pubsub_service_agent}'));
    expect(agentGrants.map(([k]) => k).sort()).toEqual([
      'google_pubsub_subscription_iam_member.dead_letter_source_subscriber',
      'google_pubsub_topic_iam_member.dead_letter_publisher',
      'google_service_account_iam_member.pubsub_agent_mints_push_tokens',
    ]);
    for (const [key, body] of agentGrants)
      expect({ key, dependsOn: body.depends_on }).toEqual({ key, dependsOn: ['${time_sleep.iam_propagation}'] });
  });

  test('name_prefix: the default keeps the names of earlier releases; two prefixes share no name in the project', () => {
    const defaults = (v: string) => variableDefault(v);
    expect(variableDefault('name_prefix')).toBe('session');
    expect([nameLocal('kind', defaults), nameLocal('kill_topic', defaults)]).toEqual(['viur-session', 'session-kill']);
    // A ViUR app's kind is fixed: in viur format a prefix never renames it (stacks differ by namespace).
    const viurStaging = (v: string) => (v === 'name_prefix' ? 'staging' : v === 'session_format' ? 'viur' : variableDefault(v));
    expect(nameLocal('kind', viurStaging)).toBe('viur-session');
    // Every named resource of the stack with its name evaluated for a prefix (the names are literal
    // templates over var.name_prefix and the name locals, or references to a named resource).
    const namesFor = (prefix: string): string[] => {
      const vars = (v: string) => (v === 'name_prefix' ? prefix : variableDefault(v));
      const names: string[] = [];
      const fill = (expr: string): string =>
        expr
          .replace(/\$\{var\.name_prefix\}/g, prefix)
          .replace(/\$\{local\.(kind|kill_topic)\}/g, (_, l: string) => nameLocal(l, vars))
          .replace(/\$\{var\.project_id\}/g, 'p1');
      for (const [key, body] of stack.resources) {
        const type = key.split('.')[0];
        const field = ['name', 'account_id', 'display_name', 'collection'].find((f) => typeof body[f] === 'string');
        if (!field) continue;
        // Object names are scoped to their bucket; the bucket's name is checked below.
        if (type === 'google_storage_bucket_object') continue;
        const raw = String(body[field]).replace('${local.source_bucket}', '${var.project_id}-${var.name_prefix}-source');
        // References to another resource's name and per-item names (for_each) are covered by their source;
        // the events topic is named by its own variable only (docs/deploy.md: each stack names its own).
        if (/\$\{(google_|each\.|var\.database_id|var\.events_topic)/.test(raw)) {
          if (/\$\{each\.key\}/.test(raw)) names.push(`${type} ${fill(raw.replace('${each.key}', '*'))}`);
          continue;
        }
        names.push(`${type} ${field === 'collection' ? `kind ${fill(raw)}` : fill(raw)}`);
      }
      const ttl = resource('terraform_data', 'expires_at_ttl').triggers_replace as Json;
      names.push(`ttl ${fill(String(ttl.kind))}`);
      return names;
    };
    expect(String(stack.locals.source_bucket)).toMatch(/: "\$\{var\.project_id\}-\$\{var\.name_prefix\}-source"\}$/);
    const staging = namesFor('staging');
    const prod = namesFor('session');
    expect(staging.filter((n) => prod.includes(n))).toEqual([]);
    // No name is left out of the prefix: every one mentions it.
    for (const n of staging) expect(n).toMatch(/staging/);
    expect(prod).toEqual(
      expect.arrayContaining(['google_pubsub_topic session-kill', 'google_firestore_index kind viur-session', 'ttl viur-session']),
    );
  });

  test('outputs the API URL, the topic and the function names', () => {
    const api = fnRef(functionsByEntryPoint().sessionApi);
    const values = [...stack.outputs.values()].map((o) => JSON.stringify(o.value));
    expect(values.some((v) => v === JSON.stringify(`\${${api}.service_config[0].uri}`) || v === JSON.stringify(`\${${api}.url}`))).toBe(
      true,
    );
    expect(values).toContain(JSON.stringify('${google_pubsub_topic.kill.name}'));
    const names = [...stack.outputs.values()].find((o) => o.value && typeof o.value === 'object' && 'sessionApi' in (o.value as Json));
    expect(names?.value).toEqual(
      Object.fromEntries(Object.entries(functionsByEntryPoint()).map(([entry, name]) => [entry, `\${${fnRef(name)}.name}`])),
    );
  });
});

describe('terraform/ against the provider schemas (terraform/schema/provider-schemas.json)', () => {
  const extract = (): SchemaExtract => JSON.parse(fs.readFileSync(SCHEMA_FILE, 'utf8')) as SchemaExtract;
  // Sorted: the order of hcl2json's keys is not the order of the source.
  const check = async (hcl: string) =>
    checkAgainstSchema([{ file: 'fixture.tf', hcl: (await parse('fixture.tf', hcl)) as Json }], extract()).sort();

  test('every resource and data block matches its schema: names at every depth, required arguments, blocks vs arguments, enum values, references', () => {
    expect(checkAgainstSchema(parsedFiles, extract())).toEqual([]);
    // Every block is covered, Terraform's own terraform_data included.
    const checked = declarations(parsedFiles);
    expect(checked.filter((d) => d.type.startsWith('google_')).length).toBeGreaterThanOrEqual(40);
    expect(checked.filter((d) => d.type === 'terraform_data').length).toBeGreaterThanOrEqual(2);
  });

  test('the extract holds exactly the types terraform/ uses, for the provider releases versions.tf pins', () => {
    const schemas = extract();
    const used = new Map<string, Set<string>>();
    for (const d of declarations(parsedFiles)) {
      const key = `${providerOf(d.type, d.body)} ${d.kind}`;
      used.set(key, (used.get(key) ?? new Set()).add(d.type));
    }
    const inExtract = new Map<string, Set<string>>();
    for (const [provider, p] of Object.entries(schemas.providers)) {
      if (Object.keys(p.resource_schemas).length > 0) inExtract.set(`${provider} resource`, new Set(Object.keys(p.resource_schemas)));
      if (Object.keys(p.data_source_schemas).length > 0) inExtract.set(`${provider} data`, new Set(Object.keys(p.data_source_schemas)));
    }
    // A type added to terraform/ without running scripts/terraform-schema.js fails here.
    const sorted = (m: Map<string, Set<string>>) => Object.fromEntries([...m].map(([k, v]) => [k, [...v].sort()]).sort());
    expect(sorted(inExtract)).toEqual(sorted(used));

    const required = versionsBlock();
    const pinned = Object.entries(schemas.providers).filter(([, p]) => p.source !== BUILT_IN_PROVIDER);
    for (const [provider, p] of pinned) {
      const pin = required[provider] as { source: string; version: string } | undefined;
      expect({ provider, pinned: pin !== undefined }).toEqual({ provider, pinned: true });
      expect(`registry.terraform.io/${pin?.source}`).toBe(p.source);
      // "~> MAJOR.MINOR": the release line that was extracted, no other major version.
      const m = /^~> (\d+)\.(\d+)$/.exec(String(pin?.version));
      expect({ provider, constraint: pin?.version, form: m !== null }).toEqual({ provider, constraint: pin?.version, form: true });
      const [major, minor] = p.version.split('.').map(Number);
      expect({ provider, admits: major === Number(m?.[1]) && minor >= Number(m?.[2]) }).toEqual({ provider, admits: true });
    }
    // Providers pinned but not in the extract: none.
    expect(Object.keys(required).sort()).toEqual(pinned.map(([name]) => name).sort());
    // terraform_data's schema came from a Terraform release that required_version admits.
    const builtIn = Object.values(schemas.providers).find((p) => p.source === BUILT_IN_PROVIDER);
    const minimum = /^>= (\d+)\.(\d+)$/.exec(
      String((parsedFiles.find((f) => f.file === 'versions.tf')?.hcl.terraform as Json[])[0].required_version),
    );
    const [tfMajor, tfMinor] = String(builtIn?.version).split('.').map(Number);
    expect(tfMajor * 1000 + tfMinor).toBeGreaterThanOrEqual(Number(minimum?.[1]) * 1000 + Number(minimum?.[2]));
  });

  test('reports a misspelled nested block', async () => {
    const problems = await check(`
resource "google_cloudfunctions2_function" "f" {
  name     = "f"
  location = "europe-west1"
  build_config {
    runtime = "nodejs22"
    source {
      storage_sorce {
        bucket = "b"
        object = "o"
      }
    }
  }
}`);
    expect(problems).toEqual([
      'fixture.tf: google_cloudfunctions2_function.f.build_config.source: no argument or block named "storage_sorce"',
    ]);
  });

  test('reports a missing required argument, also inside a nested block', async () => {
    const problems = await check(`
resource "google_pubsub_subscription" "s" {
  name = "s"
  dead_letter_policy {
    max_delivery_attempts = 5
  }
}
resource "google_cloud_scheduler_job" "j" {
  name = "j"
  http_target {
    http_method = "POST"
  }
}`);
    expect(problems).toEqual(
      [
        'fixture.tf: google_pubsub_subscription.s: the argument "topic" is required',
        'fixture.tf: google_cloud_scheduler_job.j.http_target: the argument "uri" is required',
      ].sort(),
    );
  });

  test('reports a wrong enum value, and leaves expressions alone', async () => {
    const problems = await check(`
resource "google_firestore_index" "i" {
  collection  = "k"
  api_scope   = "DATASTORE_API"
  query_scope = var.scope
  fields {
    field_path = "user"
    order      = "ASC"
  }
  fields {
    field_path = "createdAt"
    order      = "ASCENDING"
  }
}`);
    expect(problems).toEqual(
      [
        'fixture.tf: google_firestore_index.i: api_scope = "DATASTORE_API" is not one of ANY_API, DATASTORE_MODE_API, MONGODB_COMPATIBLE_API',
        'fixture.tf: google_firestore_index.i.fields: order = "ASC" is not one of ASCENDING, DESCENDING',
      ].sort(),
    );
  });

  test('reports blocks written as arguments and the other way round, repeated single blocks, unknown types and references', async () => {
    const problems = await check(`
resource "google_pubsub_subscription" "s" {
  name  = "s"
  topic = "t"
  retry_policy = { minimum_backoff = "10s" }
  labels {
    a = "b"
  }
  push_config {
    push_endpoint = google_cloudfunctions2_function.f.service_config[0].urii
  }
  push_config {
    push_endpoint = google_cloudfunctions2_function.f.url
  }
  depends_on = [google_pubsub_topic.missing]
}
resource "google_cloudfunctions2_function" "f" {
  name     = "f"
  location = "europe-west1"
}
resource "google_pubsub_topicc" "t" {
  name = "t"
}
resource "terraform_data" "d" {
  triggers = { a = "b" }
}`);
    expect(problems).toEqual(
      [
        'fixture.tf: google_pubsub_subscription.s: "retry_policy" is a block, written as an argument (use retry_policy { ... })',
        'fixture.tf: google_pubsub_subscription.s: "labels" is an argument, written as a block (use labels = ...)',
        'fixture.tf: google_pubsub_subscription.s: at most one "push_config" block is allowed, found 2',
        'fixture.tf: google_pubsub_topicc.t: google 6.50.0 has no resource type google_pubsub_topicc',
        'fixture.tf: terraform_data.d: no argument or block named "triggers"',
        'fixture.tf: google_pubsub_subscription.s: google_cloudfunctions2_function.f has no attribute "urii"',
        'fixture.tf: google_pubsub_subscription.s: depends_on ${google_pubsub_topic.missing} names nothing declared',
      ].sort(),
    );
  });
});

/** required_providers of versions.tf. */
function versionsBlock(): Record<string, unknown> {
  const hcl = parsedFiles.find((f) => f.file === 'versions.tf')?.hcl;
  const terraform = (hcl?.terraform as Json[] | undefined)?.[0];
  return (terraform?.required_providers as Json[] | undefined)?.[0] ?? {};
}

describe('scripts/package-deploy.js', () => {
  const deployDir = path.join(ROOT, 'build', 'deploy');

  const listFiles = (dir: string, base = dir): string[] =>
    fs
      .readdirSync(dir, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))]));

  test('assembles exactly the package Cloud Build compiles, and it compiles to package.json main', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts['package:deploy']).toBe('node scripts/package-deploy.js');
    expect(pkg.scripts['gcp-build']).toBeDefined();

    const run = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'package-deploy.js')], { cwd: ROOT, encoding: 'utf8' });
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });

    const sourceDirs = ['lib', 'functions', 'bin', 'client', 'deploy'].filter((d) => fs.existsSync(path.join(ROOT, d)));
    expect(fs.readdirSync(deployDir).sort()).toEqual([...sourceDirs, 'package-lock.json', 'package.json', 'tsconfig.json'].sort());
    // The deployed package.json differs in `main` (functions-framework loads the bundle's loader
    // there), in the library's optional peers becoming dependencies (the functions need them once
    // the buildpack pruned the devDependencies), and in devDependencies: only what gcp-build runs.
    const deployedMain = 'dist/deploy/index.cjs';
    const deployedPkg = JSON.parse(fs.readFileSync(path.join(deployDir, 'package.json'), 'utf8'));
    const { peerDependencies, peerDependenciesMeta: _meta, devDependencies, ...same } = pkg;
    expect(deployedPkg).toEqual({
      ...same,
      main: deployedMain,
      dependencies: { ...pkg.dependencies, ...peerDependencies },
      devDependencies: Object.fromEntries(
        ['@types/express', '@types/node', 'esbuild', 'typescript'].map((name) => [name, (devDependencies as Record<string, string>)[name]]),
      ),
    });
    expect(Object.keys(deployedPkg.dependencies)).toEqual(
      expect.arrayContaining(['@google-cloud/functions-framework', '@google-cloud/pubsub', '@google-cloud/datastore']),
    );
    // The lockfile: the repository's versions, cut to those dependencies, and exactly what npm itself
    // writes for that package.json (so `npm ci` in Cloud Build accepts it and prunes the right packages).
    const deployedLock = JSON.parse(fs.readFileSync(path.join(deployDir, 'package-lock.json'), 'utf8'));
    const repoLock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
    for (const [at, entry] of Object.entries(deployedLock.packages as Record<string, { version?: string }>))
      if (at !== '') expect({ at, version: entry.version }).toEqual({ at, version: repoLock.packages[at].version });
    for (const tooling of ['jest', '@stryker-mutator/core', 'playwright-core', 'eslint', 'prettier', 'autocannon'])
      expect(deployedLock.packages).not.toHaveProperty([`node_modules/${tooling}`]);
    const npmDir = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-lock-'));
    try {
      for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(deployDir, f), path.join(npmDir, f));
      const npm = spawnSync('npm', ['install', '--package-lock-only', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], {
        cwd: npmDir,
        encoding: 'utf8',
      });
      expect({ status: npm.status, stderr: npm.status === 0 ? '' : npm.stderr }).toEqual({ status: 0, stderr: '' });
      expect(JSON.parse(fs.readFileSync(path.join(npmDir, 'package-lock.json'), 'utf8'))).toEqual(deployedLock);
    } finally {
      fs.rmSync(npmDir, { recursive: true, force: true });
    }
    expect(pkg.scripts['gcp-build']).toContain('node deploy/bundle.js');
    // Every source of the uploaded directories, byte for byte; no tests, no local tooling.
    for (const dir of sourceDirs) {
      const expected = listFiles(path.join(ROOT, dir))
        .filter((f) => !/\.(test|spec)\.ts$/.test(f) && !f.split(path.sep).some((p) => p.startsWith('.')))
        .sort();
      expect(listFiles(path.join(deployDir, dir)).sort()).toEqual(expected);
      for (const f of expected) expect(fs.readFileSync(path.join(deployDir, dir, f))).toEqual(fs.readFileSync(path.join(ROOT, dir, f)));
    }
    const deployTsconfig = JSON.parse(fs.readFileSync(path.join(deployDir, 'tsconfig.json'), 'utf8'));
    const rootTsconfig = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8'));
    expect(deployTsconfig.compilerOptions).toEqual(rootTsconfig.compilerOptions);
    expect(deployTsconfig.include.every((p: string) => sourceDirs.includes(p.split('/')[0]))).toBe(true);

    // What Cloud Build does with the upload: `npm run gcp-build` in a copy of it, with the
    // repository's node_modules standing in for the ones `npm ci` installs there (test/deployedTree.test.ts
    // installs them with npm ci and starts the functions from the result).
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-build-'));
    try {
      fs.cpSync(deployDir, scratch, { recursive: true });
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(scratch, 'node_modules'), 'dir');
      const build = spawnSync('npm', ['run', '--silent', 'gcp-build'], { cwd: scratch, encoding: 'utf8' });
      expect(build.status === 0 ? 'built' : `exit ${build.status}: ${build.stdout}${build.stderr}`).toBe('built');
      expect(fs.existsSync(path.join(scratch, pkg.main))).toBe(true);
      for (const f of [deployedMain, 'dist/deploy/functions.js', 'dist/deploy/functions.cache'])
        expect(fs.existsSync(path.join(scratch, f))).toBe(true);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }, 180_000);

  test('run as Terraform runs it (data.external.package), it repackages the current sources and answers the external protocol', () => {
    const step = stack.data.get('external.package') as Json;
    const program = step.program as string[];
    const workingDir = path.resolve(TF_DIR, String(step.working_dir).replace('${path.module}', '.'));
    expect(workingDir).toBe(ROOT);
    // Left over from an older packaging: must not survive into the upload.
    fs.mkdirSync(path.join(deployDir, 'lib'), { recursive: true });
    fs.writeFileSync(path.join(deployDir, 'lib', 'stale.ts'), 'export const stale = true;\n');

    // The protocol: a JSON query on stdin, only a JSON object of strings on stdout.
    const run = spawnSync(program[0] === 'node' ? process.execPath : program[0], program.slice(1), {
      cwd: workingDir,
      input: '{}',
      encoding: 'utf8',
    });
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    const result = JSON.parse(run.stdout) as Record<string, unknown>;
    expect(Object.values(result).every((v) => typeof v === 'string')).toBe(true);
    expect(result.source_dir).toBe(deployDir);
    expect(fs.existsSync(path.join(deployDir, 'lib', 'stale.ts'))).toBe(false);
    const expected = listFiles(path.join(ROOT, 'lib'))
      .filter((f) => !/\.(test|spec)\.ts$/.test(f))
      .sort();
    expect(listFiles(path.join(deployDir, 'lib')).sort()).toEqual(expected);
    expect(Number(result.files)).toBe(listFiles(deployDir).length);
  });

  test('a packaging failure fails the plan with the reason on stderr and nothing on stdout', () => {
    // An uploaded source that imports outside the upload: package-deploy refuses it.
    const probe = path.join(ROOT, 'functions', 'zz-terraform-probe.ts');
    fs.writeFileSync(probe, "import '../scripts/emulators';\n");
    try {
      const run = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'package-deploy.js'), '--terraform'], {
        cwd: ROOT,
        input: '{}',
        encoding: 'utf8',
      });
      expect(run.status).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/functions\/zz-terraform-probe\.ts imports \.\.\/scripts\/emulators/);
    } finally {
      fs.rmSync(probe, { force: true });
    }
  });
});
