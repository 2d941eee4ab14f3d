import { type SameSite, validateCookieName } from '../core/cookies';
import { ConfigError } from '../core/errors';
import { MAX_COMMIT_MUTATIONS, TOPIC_ID_PATTERN } from '../core/limits';
import type { SessionSettings } from '../core/settings';

/**
 * Everything the service reads from its environment, parsed and validated once at start-up.
 * A bad value stops the process with a message naming the variable; nothing is silently ignored.
 */
export interface Config {
  projectId: string;
  store: 'datastore' | 'memory';
  kind: string;
  /** Datastore namespace; empty for the default one. */
  namespace: string | undefined;
  /** Named Firestore database in Datastore mode; undefined for `(default)`. */
  databaseId: string | undefined;
  storeTimeoutMs: number;
  /** How long a read may be served from this instance's cache; 0: off. */
  readCacheMs: number;
  datastoreEmulatorHost: string | undefined;
  /**
   * Which requests sessionApi writes a line for: `errors` (status 400 and above, the default) or
   * `all`. Cloud Run's own request log already has every request with its status, latency, user
   * agent and address, so a line per success mostly doubles the log bill and costs CPU.
   */
  logRequests: 'all' | 'errors';
  /** On Cloud Run (K_SERVICE set): X-Forwarded-For's last entry is the client address Google's front end saw. */
  behindGoogleFrontEnd: boolean;
  session: SessionSettings;
  killTopic: string;
  /** Local only: deliver kill messages as Pub/Sub push requests to this URL instead of publishing. */
  killPushUrl: string | undefined;
  admin: {
    audience: string | undefined;
    principals: string[];
    jwksFile: string | undefined;
  };
  /** Origins allowed to send cross-site requests that change a session. */
  allowedOrigins: string[];
  deletion: {
    batchSize: number;
    parallelism: number;
    cleanupBudgetSeconds: number;
    cleanupGraceSeconds: number;
    killBudgetSeconds: number;
  };
}

/** Every variable the configuration knows, with its default as documented (the README table and Terraform use these names). */
// Stryker disable StringLiteral: the descriptions are prose for readers; nothing reads them (docs/testing.md, equivalent mutants)
export const CONFIG_VARIABLES = {
  GOOGLE_CLOUD_PROJECT: 'project id; also part of the default cookie name',
  DATASTORE_EMULATOR_HOST: 'host:port of the Datastore emulator (standard client switch)',
  PUBSUB_EMULATOR_HOST: 'host:port of the Pub/Sub emulator (standard client switch)',
  K_SERVICE: 'set by Cloud Run (Cloud Functions 2nd gen): the request log takes remoteIp from the last X-Forwarded-For entry, which Google\'s front end appends',
  SESSION_STORE: 'datastore (default) or memory (local use only)',
  SESSION_KIND: 'Datastore kind, default viur-session',
  SESSION_NAMESPACE: 'Datastore namespace, default none',
  SESSION_DATABASE: 'Firestore database id in Datastore mode, default (default)',
  SESSION_STORE_TIMEOUT_MS: 'deadline of each Datastore call, default 5000',
  SESSION_LIFETIME_SECONDS: 'idle lifetime, default 3600',
  SESSION_REFRESH_INTERVAL_SECONDS: 'how old lastseen may get before a read rewrites it, default 300',
  SESSION_COOKIE_NAME: 'default __Host-viur_cookie_<project>; __session behind Firebase Hosting',
  SESSION_SAME_SITE: 'lax (default), strict, none or off',
  SESSION_COOKIE_PERSISTENT: 'true: Max-Age = lifetime; default false',
  SESSION_PERSISTENT_FIELDS_ON_LOGIN: 'comma-separated keys kept across login, default language',
  SESSION_PERSISTENT_FIELDS_ON_LOGOUT: 'comma-separated keys kept across logout, default language',
  SESSION_MAX_DATA_BYTES: 'limit on session data as stored, default 786432, at most 1000000',
  SESSION_MAX_SECURITY_KEYS: 'one-time keys valid at once per session, default 16',
  SESSION_MAX_DATA_KEYS: 'most keys a session may hold, default 10000 (413 beyond)',
  SESSION_ABSOLUTE_LIFETIME_SECONDS: 'a session ends this long after its creation whatever its use, default 604800 (7 days); 0 disables',
  SESSION_MAX_SESSIONS_PER_USER: 'sessions a user may have; at login the least recently seen beyond it end, default 0 (no limit)',
  SESSION_READ_CACHE_MS: 'per-instance cache of session reads, how stale a read may be, default 0 (off)',
  SESSION_LOG_REQUESTS: 'errors (default: a line per request answered 400 or above) or all (a line per request)',
  SESSION_KILL_TOPIC: 'Pub/Sub topic of kill messages, default session-kill',
  SESSION_KILL_PUSH_URL: 'local only: push kill messages to this URL instead of Pub/Sub',
  SESSION_ADMIN_AUDIENCE: 'expected aud of privileged tokens; required when SESSION_ADMIN_PRINCIPALS is set',
  SESSION_ADMIN_PRINCIPALS: 'comma-separated emails allowed on privileged routes, default none',
  SESSION_ADMIN_JWKS_FILE: 'local/test only: verify privileged tokens against this JWKS file',
  SESSION_ALLOWED_ORIGINS: 'comma-separated origins allowed to change sessions cross-site, default none',
  SESSION_DELETE_BATCH_SIZE: 'keys per delete commit, default 500 (the maximum)',
  SESSION_DELETE_PARALLELISM: 'delete commits in flight at once, default 4',
  SESSION_CLEANUP_BUDGET_SECONDS: 'time one cleanup run may take, default 1200',
  SESSION_CLEANUP_GRACE_SECONDS: 'how long past expiresAt a session is kept, default 300',
  SESSION_KILL_BUDGET_SECONDS: 'time one kill invocation may take before it continues in a follow-up message, default 240',
} as const;
// Stryker restore StringLiteral

export type ConfigVariable = keyof typeof CONFIG_VARIABLES;
type Env = Record<string, string | undefined>;

function read(env: Env, name: ConfigVariable): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/**
 * A validator turns the raw text into a value or returns an error message. Hand-written rather
 * than a schema library: this runs at every cold start, and loading zod took about as long as
 * loading the Datastore client (bench/: cold start).
 */
type Schema<T> = (raw: string) => { value: T } | { error: string };

function parse<T>(env: Env, name: ConfigVariable, schema: Schema<T>, fallback: T): T {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const result = schema(raw);
  if ('error' in result) throw new ConfigError(name, `${JSON.stringify(raw)} is not valid: ${result.error}`);
  return result.value;
}

const integer =
  (min: number, max: number): Schema<number> =>
  (raw) => {
    const n = Number(raw);
    if (!Number.isInteger(n)) return { error: 'expected an integer' };
    if (n < min) return { error: `too small: expected at least ${min}` };
    if (n > max) return { error: `too big: expected at most ${max}` };
    return { value: n };
  };
const oneOf =
  <const T extends string>(values: readonly T[]): Schema<T> =>
  (raw) =>
    (values as readonly string[]).includes(raw) ? { value: raw as T } : { error: `expected one of ${values.join(', ')}` };
const boolean: Schema<boolean> = (raw) => {
  const r = oneOf(['true', 'false', '1', '0'])(raw);
  return 'error' in r ? r : { value: r.value === 'true' || r.value === '1' };
};
const splitList = (raw: string) =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
const list: Schema<string[]> = (raw) => ({ value: splitList(raw) });
const pattern =
  (re: RegExp, message: string): Schema<string> =>
  (raw) =>
    re.test(raw) ? { value: raw } : { error: message };
const name = pattern(/^[A-Za-z0-9_.-]+$/, 'only letters, digits, _ . -');
/** An absolute URL (what the URL parser accepts). */
function isUrl(raw: string): boolean {
  return URL.canParse(raw);
}
const url: Schema<string> = (raw) => (isUrl(raw) ? { value: raw } : { error: 'invalid URL' });
const urlList: Schema<string[]> = (raw) => {
  const items = splitList(raw);
  const bad = items.find((u) => !isUrl(u));
  return bad === undefined ? { value: items } : { error: `invalid URL ${JSON.stringify(bad)}` };
};

export function loadConfig(env: Env = process.env): Config {
  const store = parse(env, 'SESSION_STORE', oneOf(['datastore', 'memory']), 'datastore');
  const projectId = read(env, 'GOOGLE_CLOUD_PROJECT') ?? env.GCLOUD_PROJECT?.trim();
  if (!projectId && store === 'datastore') {
    throw new ConfigError('GOOGLE_CLOUD_PROJECT', 'must be set when SESSION_STORE is datastore');
  }
  const project = projectId || 'local';
  const lifetimeSeconds = parse(env, 'SESSION_LIFETIME_SECONDS', integer(1, 366 * 24 * 3600), 3600);
  const sameSiteRaw = parse(env, 'SESSION_SAME_SITE', oneOf(['lax', 'strict', 'none', 'off']), 'lax');
  const sameSite: SameSite = sameSiteRaw === 'off' ? false : sameSiteRaw;
  // __Host-: browsers accept it only host-only (no Domain), Secure and Path=/, so a sibling subdomain
  // cannot plant a cookie of this name (cookie tossing).
  const cookieName = validateCookieName(read(env, 'SESSION_COOKIE_NAME') ?? `__Host-viur_cookie_${project}`, 'SESSION_COOKIE_NAME');
  const principals = parse(env, 'SESSION_ADMIN_PRINCIPALS', list, []);
  const audience = read(env, 'SESSION_ADMIN_AUDIENCE');
  if (principals.length > 0 && audience === undefined) {
    // Taking it from the request instead would let the caller choose it (the Host header).
    throw new ConfigError('SESSION_ADMIN_AUDIENCE', 'must be set when SESSION_ADMIN_PRINCIPALS is: the expected audience of privileged ID tokens (the URL callers use)');
  }
  return {
    projectId: project,
    store,
    kind: parse(env, 'SESSION_KIND', name, 'viur-session'),
    namespace: parse<string | undefined>(env, 'SESSION_NAMESPACE', name, undefined),
    databaseId: parse<string | undefined>(env, 'SESSION_DATABASE', name, undefined),
    storeTimeoutMs: parse(env, 'SESSION_STORE_TIMEOUT_MS', integer(100, 600_000), 5000),
    readCacheMs: parse(env, 'SESSION_READ_CACHE_MS', integer(0, 60_000), 0),
    logRequests: parse(env, 'SESSION_LOG_REQUESTS', oneOf(['all', 'errors']), 'errors'),
    datastoreEmulatorHost: read(env, 'DATASTORE_EMULATOR_HOST'),
    behindGoogleFrontEnd: read(env, 'K_SERVICE') !== undefined,
    session: {
      lifetimeSeconds,
      refreshIntervalSeconds: parse(env, 'SESSION_REFRESH_INTERVAL_SECONDS', integer(0, 24 * 3600), 300),
      persistentFieldsOnLogin: parse(env, 'SESSION_PERSISTENT_FIELDS_ON_LOGIN', list, ['language']),
      persistentFieldsOnLogout: parse(env, 'SESSION_PERSISTENT_FIELDS_ON_LOGOUT', list, ['language']),
      maxDataBytes: parse(env, 'SESSION_MAX_DATA_BYTES', integer(1024, 1_000_000), 786_432),
      maxSecurityKeys: parse(env, 'SESSION_MAX_SECURITY_KEYS', integer(1, 100), 16),
      maxDataKeys: parse(env, 'SESSION_MAX_DATA_KEYS', integer(1, 100_000), 10_000),
      absoluteLifetimeSeconds: parse(env, 'SESSION_ABSOLUTE_LIFETIME_SECONDS', integer(0, 366 * 24 * 3600), 7 * 24 * 3600),
      maxSessionsPerUser: parse(env, 'SESSION_MAX_SESSIONS_PER_USER', integer(0, 10_000), 0),
      cookie: {
        name: cookieName,
        sameSite,
        persistent: parse(env, 'SESSION_COOKIE_PERSISTENT', boolean, false),
      },
    },
    killTopic: parse(env, 'SESSION_KILL_TOPIC', pattern(TOPIC_ID_PATTERN, 'not a Pub/Sub topic id'), 'session-kill'),
    killPushUrl: parse<string | undefined>(env, 'SESSION_KILL_PUSH_URL', url, undefined),
    admin: {
      audience,
      principals,
      jwksFile: read(env, 'SESSION_ADMIN_JWKS_FILE'),
    },
    allowedOrigins: parse(env, 'SESSION_ALLOWED_ORIGINS', urlList, []).map((o) => new URL(o).origin),
    deletion: {
      batchSize: parse(env, 'SESSION_DELETE_BATCH_SIZE', integer(1, MAX_COMMIT_MUTATIONS), MAX_COMMIT_MUTATIONS),
      parallelism: parse(env, 'SESSION_DELETE_PARALLELISM', integer(1, 32), 4),
      cleanupBudgetSeconds: parse(env, 'SESSION_CLEANUP_BUDGET_SECONDS', integer(1, 3600), 1200),
      cleanupGraceSeconds: parse(env, 'SESSION_CLEANUP_GRACE_SECONDS', integer(0, 7 * 24 * 3600), 300),
      killBudgetSeconds: parse(env, 'SESSION_KILL_BUDGET_SECONDS', integer(1, 3600), 240),
    },
  };
}
