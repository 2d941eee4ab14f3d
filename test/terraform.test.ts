/**
 * The Terraform deployment checked against the code it deploys, offline. The google provider cannot
 * be downloaded here, so `terraform init/validate/plan` never run; what can be checked without it
 * is: formatting, and the parsed HCL against the entry points functions/index.ts registers, the
 * variables shared/config.ts parses, the kill query shared/datastoreStore.ts runs, and the package
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
import { CONFIG_VARIABLES, loadConfig } from '../shared/config';

const ROOT = path.resolve(__dirname, '..');
const TF_DIR = path.join(ROOT, 'terraform');
const EXPECTED_ENTRY_POINTS = ['sessionApi', 'killSessionByUser', 'startClearSessions'];
/** Switches for local use only; a deployment that sets them would run on memory or trust a local key file. */
const LOCAL_ONLY_VARIABLES = ['SESSION_STORE', 'SESSION_ADMIN_JWKS_FILE', 'SESSION_KILL_PUSH_URL', 'DATASTORE_EMULATOR_HOST', 'PUBSUB_EMULATOR_HOST'];

type Json = Record<string, unknown>;

interface Stack {
  resources: Map<string, Json>; // "type.name" -> body
  variables: Map<string, Json>;
  outputs: Map<string, Json>;
  data: Map<string, Json>;
  locals: Json;
}

let stack: Stack;

async function loadStack(): Promise<Stack> {
  const s: Stack = { resources: new Map(), variables: new Map(), outputs: new Map(), data: new Map(), locals: {} };
  const files = fs.readdirSync(TF_DIR).filter((f) => f.endsWith('.tf')).sort();
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
    const m = /^\$\{var\.(\w+)\}$/.exec(String(resource('google_pubsub_topic', 'kill').name));
    if (!m) throw new Error('google_pubsub_topic.kill.name is not a variable');
    return str(varValue(m[1]));
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
    else throw new Error(`${key}: the test cannot evaluate ${expr}; teach evaluateEnv this form`);
    // The same filter as local.session_env: empty values are left out.
    if (value !== '') env[key] = value;
  }
  return env;
}

/** IAM members of a resource, whichever of member/members it uses. */
function members(body: Json): string[] {
  if (Array.isArray(body.members)) return body.members as string[];
  if (typeof body.member === 'string') return [body.member];
  return [];
}

beforeAll(async () => {
  stack = await loadStack();
});

describe('terraform/', () => {
  test('is formatted (terraform fmt -check -recursive)', () => {
    const r = spawnSync('terraform', ['fmt', '-check', '-recursive'], { cwd: TF_DIR, encoding: 'utf8' });
    if (r.error) throw new Error(`terraform is not runnable: ${r.error.message}`);
    expect({ status: r.status, unformatted: r.stdout.trim() }).toEqual({ status: 0, unformatted: '' });
  });

  test('deploys every entry point functions/index.ts registers, once, on nodejs22', () => {
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
      expect({ name, runtime: build.runtime }).toEqual({ name, runtime: 'nodejs22' });
      // Delivered by pubsub.tf's own push subscription (which can dead-letter), never by Eventarc.
      expect({ name, eventTrigger: body.event_trigger }).toEqual({ name, eventTrigger: undefined });
    }
  });

  test('every function gets its own service account, and builds from the uploaded archive', () => {
    const fns = ofType('google_cloudfunctions2_function');
    const accounts = fns.map(([, body]) => nested(body, 'service_config').service_account_email);
    expect(new Set(accounts).size).toBe(3);
    for (const account of accounts) expect(account).toMatch(/^\$\{google_service_account\.\w+\.email\}$/);

    const archive = stack.data.get('archive_file.source');
    expect(archive).toBeDefined();
    expect(deref(archive?.source_dir)).toBe('${path.module}/../build/deploy');
    // A content hash in the object name: a code change uploads a new object and redeploys.
    expect(resource('google_storage_bucket_object', 'source').name).toMatch(/\$\{data\.archive_file\.source\.output_(sha256|md5|base64sha256|sha512)\}/);
    for (const [, body] of fns) {
      const storage = nested(body, 'build_config', 'source', 'storage_source');
      expect(deref(storage.object)).toBe('${google_storage_bucket_object.source.name}');
      expect(deref(storage.bucket)).toBe('${google_storage_bucket.source.name}');
    }
  });

  test('sets only environment variables the configuration parser knows, never the local-only ones', () => {
    const known = Object.keys(CONFIG_VARIABLES);
    for (const [name, body] of ofType('google_cloudfunctions2_function')) {
      const keys = envKeys(deref(nested(body, 'service_config').environment_variables));
      expect({ name, unknown: keys.filter((k) => !known.includes(k)) }).toEqual({ name, unknown: [] });
      expect({ name, localOnly: keys.filter((k) => LOCAL_ONLY_VARIABLES.includes(k)) }).toEqual({ name, localOnly: [] });
      for (const required of ['GOOGLE_CLOUD_PROJECT', 'SESSION_KIND', 'SESSION_KILL_TOPIC']) expect(keys).toContain(required);
    }
    for (const file of fs.readdirSync(TF_DIR).filter((f) => f.endsWith('.tf'))) {
      // Comments may name them (to say why they are absent); configuration may not.
      const text = fs.readFileSync(path.join(TF_DIR, file), 'utf8').replace(/(^|\s)(#|\/\/).*$/gm, '$1');
      for (const name of LOCAL_ONLY_VARIABLES) expect({ file, name, found: new RegExp(`\\b${name}\\b`).test(text) }).toEqual({ file, name, found: false });
    }
  });

  test("the variables' defaults produce exactly the parser's defaults", () => {
    const env = evaluateEnv({ project_id: 'p1' });
    expect(loadConfig(env)).toEqual(loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' }));
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
      },
      admin: { audience: 'https://sessions.example.com', principals: ['a@p1.iam.gserviceaccount.com', 'b@p1.iam.gserviceaccount.com'] },
      allowedOrigins: ['https://www.example.com'],
      deletion: { cleanupBudgetSeconds: 900 },
    });
  });

  test('creates the kill topic the functions and the publisher use, and lets every publisher publish', () => {
    const topic = resource('google_pubsub_topic', 'kill');
    expect(topic.name).toBe('${var.kill_topic}');
    expect(variableDefault('kill_topic')).toBe(loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' }).killTopic);
    expect(variableDefault('kill_topic')).toBe('session-kill');
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
    const scheduler = nested(resource('google_cloud_scheduler_job', 'cleanup'), 'http_target', 'oidc_token').service_account_email as string;
    const push = nested(resource('google_pubsub_subscription', 'kill_push'), 'push_config', 'oidc_token').service_account_email as string;
    expect(scheduler).not.toBe(push);

    const invokerTypes = ['google_cloud_run_service_iam_binding', 'google_cloud_run_service_iam_member', 'google_cloud_run_v2_service_iam_binding', 'google_cloud_run_v2_service_iam_member'];
    const invokers = invokerTypes.flatMap((t) => ofType(t).map(([name, body]) => ({ type: t, name, body }))).filter((i) => i.body.role === 'roles/run.invoker');
    const invokersOf = (entry: string) => invokers.filter((i) => String(i.body.service ?? i.body.name).startsWith(`\${${fnRef(byEntry[entry])}.`));
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
      if (all.some((m) => m === 'allUsers' || m === 'allAuthenticatedUsers')) expect(key).toBe(`google_cloud_run_service_iam_binding.${invokersOf('sessionApi')[0].name}`);
      if (key.startsWith('google_project_iam_') || key.startsWith('google_cloudfunctions2_function_iam_')) expect({ key, role: body.role }).not.toEqual({ key, role: 'roles/run.invoker' });
    }
  });

  test('grants no broad roles: project-level roles are Datastore access for the runtimes and the build role only', () => {
    const roles = [...stack.resources].filter(([key]) => /_iam_(member|binding)\./.test(key)).map(([key, body]) => ({ key, role: body.role as string }));
    for (const { key, role } of roles) expect({ key, role }).not.toEqual({ key, role: expect.stringMatching(/^roles\/(owner|editor|viewer)$/) });
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
    const timeout = Number(nested(resource('google_cloudfunctions2_function', functionsByEntryPoint().startClearSessions), 'service_config').timeout_seconds);
    expect(timeout).toBeGreaterThanOrEqual(deadline);
    expect(Number(variableDefault('cleanup_budget_seconds'))).toBeLessThan(deadline);
    expect(Number(variableDefault('cleanup_budget_seconds'))).toBe(loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' }).deletion.cleanupBudgetSeconds);
  });

  test('kill messages are pushed to the kill function with a dead-letter path', () => {
    const kill = fnRef(functionsByEntryPoint().killSessionByUser);
    const sub = resource('google_pubsub_subscription', 'kill_push');
    expect(sub.topic).toBe('${google_pubsub_topic.kill.id}');
    const pushConfig = nested(sub, 'push_config');
    const endpoint = String(pushConfig.push_endpoint).replace(/\$\{local\.(\w+)\}/g, (_, name: string) => String(deref(`\${local.${name}}`)));
    const serviceUrl = `\${${kill}.service_config[0].uri}`;
    expect(endpoint.startsWith(serviceUrl)).toBe(true);
    // functions-framework turns a raw push into a CloudEvent only when the path names the topic.
    expect(endpoint.slice(serviceUrl.length)).toBe('/projects/${var.project_id}/topics/${google_pubsub_topic.kill.name}');
    expect(deref(nested(pushConfig, 'oidc_token').audience)).toBe(serviceUrl);
    const timeout = Number(nested(resource('google_cloudfunctions2_function', functionsByEntryPoint().killSessionByUser), 'service_config').timeout_seconds);
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
    expect(String(stack.locals.pubsub_service_agent)).toMatch(/^serviceAccount:service-\$\{data\.google_project\.\w+\.number\}@gcp-sa-pubsub\.iam\.gserviceaccount\.com$/);
    expect(ofType('google_pubsub_topic_iam_member').map(([, b]) => b)).toContainEqual(
      expect.objectContaining({ topic: '${google_pubsub_topic.kill_dead_letter.name}', role: 'roles/pubsub.publisher', member: agent }),
    );
    expect(ofType('google_pubsub_subscription_iam_member').map(([, b]) => b)).toContainEqual(
      expect.objectContaining({ subscription: '${google_pubsub_subscription.kill_push.name}', role: 'roles/pubsub.subscriber', member: agent }),
    );
  });

  test('Firestore: Datastore mode, the composite index of the kill query, a TTL policy on expiresAt', () => {
    const defaults = loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' });
    expect(variableDefault('kind')).toBe(defaults.kind);
    expect(variableDefault('database_id')).toBe('(default)');
    expect(variableDefault('create_database')).toBe(false);
    const db = resource('google_firestore_database', 'sessions');
    expect(db).toMatchObject({ type: 'DATASTORE_MODE', name: '${var.database_id}', count: '${var.create_database ? 1 : 0}' });

    const indexes = ofType('google_firestore_index').map(([, b]) => b);
    expect(indexes).toHaveLength(1);
    expect(indexes[0]).toMatchObject({
      api_scope: 'DATASTORE_MODE_API',
      query_scope: 'COLLECTION_GROUP',
      collection: '${var.kind}',
      database: '${var.database_id}',
      fields: [
        { field_path: 'user', order: 'ASCENDING' },
        { field_path: 'createdAt', order: 'ASCENDING' },
      ],
    });
    // The query those fields serve: equality on user, range and order on createdAt.
    const store = fs.readFileSync(path.join(ROOT, 'shared', 'datastoreStore.ts'), 'utf8');
    expect(store).toMatch(/PropertyFilter\(\s*['"]user['"]\s*,\s*['"]=['"]/);
    expect(store).toMatch(/PropertyFilter\(\s*['"]createdAt['"]\s*,\s*['"]<=?['"]/);
    expect(store).toMatch(/\.order\(\s*['"]createdAt['"]\s*\)/);

    const ttl = ofType('google_firestore_field').map(([, b]) => b);
    expect(ttl).toHaveLength(1);
    expect(ttl[0]).toMatchObject({ collection: '${var.kind}', field: 'expiresAt', database: '${var.database_id}', ttl_config: [{}] });
    // The cleanup query filters on expiresAt: its inherited single-property index must stay.
    expect(ttl[0].index_config).toBeUndefined();
  });

  test('outputs the API URL, the topic and the function names', () => {
    const api = fnRef(functionsByEntryPoint().sessionApi);
    const values = [...stack.outputs.values()].map((o) => JSON.stringify(o.value));
    expect(values.some((v) => v === JSON.stringify(`\${${api}.service_config[0].uri}`) || v === JSON.stringify(`\${${api}.url}`))).toBe(true);
    expect(values).toContain(JSON.stringify('${google_pubsub_topic.kill.name}'));
    const names = [...stack.outputs.values()].find((o) => o.value && typeof o.value === 'object' && 'sessionApi' in (o.value as Json));
    expect(names?.value).toEqual(Object.fromEntries(Object.entries(functionsByEntryPoint()).map(([entry, name]) => [entry, `\${${fnRef(name)}.name}`])));
  });
});

describe('scripts/package-deploy.js', () => {
  const deployDir = path.join(ROOT, 'build', 'deploy');

  const listFiles = (dir: string, base = dir): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))]));

  test('assembles exactly the package Cloud Build compiles, and it compiles to package.json main', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.scripts['package:deploy']).toBe('node scripts/package-deploy.js');
    expect(pkg.scripts['gcp-build']).toBeDefined();

    const run = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'package-deploy.js')], { cwd: ROOT, encoding: 'utf8' });
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });

    const sourceDirs = ['shared', 'functions', 'bin'].filter((d) => fs.existsSync(path.join(ROOT, d)));
    expect(fs.readdirSync(deployDir).sort()).toEqual([...sourceDirs, 'package-lock.json', 'package.json', 'tsconfig.json'].sort());
    for (const file of ['package.json', 'package-lock.json']) {
      expect(fs.readFileSync(path.join(deployDir, file), 'utf8')).toBe(fs.readFileSync(path.join(ROOT, file), 'utf8'));
    }
    // Every source of the uploaded directories, byte for byte; no tests, no local tooling.
    for (const dir of sourceDirs) {
      const expected = listFiles(path.join(ROOT, dir)).filter((f) => !/\.(test|spec)\.ts$/.test(f) && !f.split(path.sep).some((p) => p.startsWith('.'))).sort();
      expect(listFiles(path.join(deployDir, dir)).sort()).toEqual(expected);
      for (const f of expected) expect(fs.readFileSync(path.join(deployDir, dir, f))).toEqual(fs.readFileSync(path.join(ROOT, dir, f)));
    }
    const deployTsconfig = JSON.parse(fs.readFileSync(path.join(deployDir, 'tsconfig.json'), 'utf8'));
    const rootTsconfig = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8'));
    expect(deployTsconfig.compilerOptions).toEqual(rootTsconfig.compilerOptions);
    expect(deployTsconfig.include.every((p: string) => sourceDirs.includes(p.split('/')[0]))).toBe(true);

    // What gcp-build does in Cloud Build, into a scratch directory: the compiler resolves modules
    // from the repository's node_modules, as it will from the installed ones there.
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-build-'));
    try {
      const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(deployDir, 'tsconfig.json'), '--outDir', outDir], { cwd: deployDir, encoding: 'utf8' });
      expect({ status: tsc.status, output: tsc.stdout + tsc.stderr }).toEqual({ status: 0, output: '' });
      expect(fs.existsSync(path.join(outDir, pkg.main.replace(/^dist\//, '')))).toBe(true);
    } finally {
      fs.rmSync(outDir, { recursive: true, force: true });
    }
  }, 180_000);
});
