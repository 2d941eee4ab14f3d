import { type SameSite, validateCookieName } from '../core/cookies';
import { ConfigError } from '../core/errors';
import type { SessionSettings } from '../core/settings';
import { derivedDigestKey } from './log';
import { type ConfigVariable, type Environment, SETTINGS, setting } from './settings';

export { SETTINGS, setting, settingRow, type ConfigVariable, type SettingRow, type SettingScope } from './settings';

/**
 * Everything the service reads from its environment, parsed and validated once at start-up.
 * A bad value stops the process with a message naming the variable; nothing is silently ignored.
 * The variables are listed in README.md#configuration.
 */
export interface Config {
  projectId: string;
  store: 'datastore' | 'memory';
  /** Which entity shape the store reads and writes: this service's own, or a ViUR 3.8 app's. */
  format: 'native' | 'viur';
  kind: string;
  /** Datastore namespace; empty for the default one. */
  namespace: string | undefined;
  /** Named Firestore database in Datastore mode; undefined for `(default)`. */
  databaseId: string | undefined;
  storeTimeoutMs: number;
  /** How long a read may be served from this instance's cache; 0: off. */
  readCacheMs: number;
  datastoreEmulatorHost: string | undefined;
  /** On an emulator: open transactions with a separate beginTransaction (the Firestore emulator) or with the first lookup (production's path). */
  emulatorTransactions: 'separate-begin' | 'lookup';
  /**
   * Which requests sessionApi writes a line for: `errors` (status 400 and above, the default) or
   * `all`. Cloud Run's own request log already has every request with its status, latency, user
   * agent and address, so a line per success mostly doubles the log bill and costs CPU.
   */
  logRequests: 'all' | 'errors';
  /** How kill log lines name a user: a keyed digest (the default) or, by opt-in, the raw id. */
  logUserIds: 'digest' | 'raw';
  /** Key of that digest: SESSION_LOG_DIGEST_KEY, else derived from the project id (docs/operations.md). */
  logDigestKey: string;
  /** On Cloud Run (K_SERVICE set): X-Forwarded-For's last entry is the client address Google's front end saw. */
  behindGoogleFrontEnd: boolean;
  session: SessionSettings;
  killTopic: string;
  /** Local only: deliver kill messages as Pub/Sub push requests to this URL instead of publishing. */
  killPushUrl: string | undefined;
  /** Topic of session events (docs/events.md); undefined: no events are recorded. */
  eventsTopic: string | undefined;
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
    /** `viur` format: seconds after a kill until the second sweep of the killed keys. */
    viurResweepSeconds: number;
  };
}

/**
 * Every variable the configuration knows, with its documentation line (the README's "meaning"),
 * derived from SETTINGS.
 *
 * @example
 * CONFIG_VARIABLES.SESSION_KIND; // 'Datastore kind'
 */
export const CONFIG_VARIABLES = Object.fromEntries(SETTINGS.map((row) => [row.name, row.doc])) as Readonly<Record<ConfigVariable, string>>;

/**
 * An allowed origin as browsers send it in `Origin`: scheme, host, and the port when it is not the
 * default (a path is dropped). Only http and https: the URL standard gives other schemes
 * (`capacitor://localhost`, `chrome-extension://…`, `file://`) the opaque origin, serialised
 * `"null"`, which is also what any sandboxed iframe sends, so allowing one would allow every site.
 */
function webOrigin(value: string): string {
  const url = new URL(value);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(
      'SESSION_ALLOWED_ORIGINS',
      `${value} is not an http(s) origin: its origin serialises as "null", the Origin every sandboxed iframe sends, ` +
        'so it cannot be allowed (list origins such as https://www.example.com)',
    );
  }
  return url.origin;
}

/**
 * The configuration of `env`: each variable read as its row in SETTINGS says, then the rules that
 * tie variables together. Throws a ConfigError naming the first variable that is wrong. Defaults
 * to process.env; pass an object to configure a library user or a test without touching it.
 *
 * @example
 * loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' }).session.cookie.name; // '__Host-viur_cookie_p1'
 * loadConfig({}); // throws 'GOOGLE_CLOUD_PROJECT: must be set when SESSION_STORE is datastore'
 */
export function loadConfig(env: Environment = process.env): Config {
  const store = setting(env, 'SESSION_STORE');
  const projectId = setting(env, 'GOOGLE_CLOUD_PROJECT') ?? env.GCLOUD_PROJECT?.trim();
  if (!projectId && store === 'datastore') {
    throw new ConfigError('GOOGLE_CLOUD_PROJECT', 'must be set when SESSION_STORE is datastore');
  }
  const project = projectId || 'local';
  const lifetimeSeconds = setting(env, 'SESSION_LIFETIME_SECONDS');
  const sameSiteRaw = setting(env, 'SESSION_SAME_SITE');
  const sameSite: SameSite = sameSiteRaw === 'off' ? false : sameSiteRaw;
  // __Host-: browsers accept it only host-only (no Domain), Secure and Path=/, so a sibling subdomain
  // cannot plant a cookie of this name (cookie tossing).
  const format = setting(env, 'SESSION_FORMAT');
  if (format === 'viur' && store === 'memory') {
    throw new ConfigError('SESSION_FORMAT', 'viur works on the entities a ViUR app stores in Datastore: it needs SESSION_STORE=datastore');
  }
  if (format === 'viur' && setting(env, 'SESSION_EVENTS_TOPIC') !== undefined) {
    // The outbox is stored with this service's own entities; a ViUR app's writes record nothing, so
    // events would be partial (docs/events.md#formats).
    throw new ConfigError(
      'SESSION_EVENTS_TOPIC',
      'session events are available in native format only: unset it, or use SESSION_FORMAT=native',
    );
  }
  // In viur format the cookie is the app's own: ViUR names it viur_cookie_<project> (session.py:56).
  const defaultCookie = format === 'viur' ? `viur_cookie_${project}` : `__Host-viur_cookie_${project}`;
  const cookieName = validateCookieName(setting(env, 'SESSION_COOKIE_NAME') ?? defaultCookie, 'SESSION_COOKIE_NAME');
  const principals = setting(env, 'SESSION_ADMIN_PRINCIPALS');
  const audience = setting(env, 'SESSION_ADMIN_AUDIENCE');
  if (principals.length > 0 && audience === undefined) {
    // Taking it from the request instead would let the caller choose it (the Host header).
    throw new ConfigError(
      'SESSION_ADMIN_AUDIENCE',
      'must be set when SESSION_ADMIN_PRINCIPALS is: the expected audience of privileged ID tokens (the URL callers use)',
    );
  }
  return {
    projectId: project,
    store,
    format,
    kind: setting(env, 'SESSION_KIND'),
    namespace: setting(env, 'SESSION_NAMESPACE'),
    databaseId: setting(env, 'SESSION_DATABASE'),
    storeTimeoutMs: setting(env, 'SESSION_STORE_TIMEOUT_MS'),
    readCacheMs: setting(env, 'SESSION_READ_CACHE_MS'),
    logRequests: setting(env, 'SESSION_LOG_REQUESTS'),
    logUserIds: setting(env, 'SESSION_LOG_USER_IDS'),
    logDigestKey: setting(env, 'SESSION_LOG_DIGEST_KEY') ?? derivedDigestKey(project),
    datastoreEmulatorHost: setting(env, 'DATASTORE_EMULATOR_HOST'),
    emulatorTransactions: setting(env, 'DATASTORE_EMULATOR_TRANSACTIONS'),
    behindGoogleFrontEnd: setting(env, 'K_SERVICE') !== undefined,
    session: {
      lifetimeSeconds,
      refreshIntervalSeconds: setting(env, 'SESSION_REFRESH_INTERVAL_SECONDS'),
      persistentFieldsOnLogin: setting(env, 'SESSION_PERSISTENT_FIELDS_ON_LOGIN'),
      persistentFieldsOnLogout: setting(env, 'SESSION_PERSISTENT_FIELDS_ON_LOGOUT'),
      maxDataBytes: setting(env, 'SESSION_MAX_DATA_BYTES'),
      maxSecurityKeys: setting(env, 'SESSION_MAX_SECURITY_KEYS'),
      maxDataKeys: setting(env, 'SESSION_MAX_DATA_KEYS'),
      absoluteLifetimeSeconds: setting(env, 'SESSION_ABSOLUTE_LIFETIME_SECONDS'),
      maxSessionsPerUser: setting(env, 'SESSION_MAX_SESSIONS_PER_USER'),
      cookie: {
        name: cookieName,
        sameSite,
        persistent: setting(env, 'SESSION_COOKIE_PERSISTENT'),
      },
    },
    killTopic: setting(env, 'SESSION_KILL_TOPIC'),
    killPushUrl: setting(env, 'SESSION_KILL_PUSH_URL'),
    eventsTopic: setting(env, 'SESSION_EVENTS_TOPIC'),
    admin: {
      audience,
      principals,
      jwksFile: setting(env, 'SESSION_ADMIN_JWKS_FILE'),
    },
    allowedOrigins: setting(env, 'SESSION_ALLOWED_ORIGINS').map(webOrigin),
    deletion: {
      batchSize: setting(env, 'SESSION_DELETE_BATCH_SIZE'),
      parallelism: setting(env, 'SESSION_DELETE_PARALLELISM'),
      cleanupBudgetSeconds: setting(env, 'SESSION_CLEANUP_BUDGET_SECONDS'),
      cleanupGraceSeconds: setting(env, 'SESSION_CLEANUP_GRACE_SECONDS'),
      killBudgetSeconds: setting(env, 'SESSION_KILL_BUDGET_SECONDS'),
      viurResweepSeconds: setting(env, 'SESSION_VIUR_RESWEEP_SECONDS'),
    },
  };
}
