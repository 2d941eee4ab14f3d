import { ConfigError } from '../core/errors';
import { MAX_COMMIT_MUTATIONS, TOPIC_ID_PATTERN } from '../core/limits';

/**
 * Where a setting is set: `deploy` by terraform/ (functions.tf's environment), `local` only by hand
 * for local runs and tests (a deployment that set it would run on memory or trust a local key
 * file), `platform` by Google's runtime itself (set from Terraform it would lie about where the
 * code runs). test/terraform checks both ways.
 */
export type SettingScope = 'deploy' | 'local' | 'platform';

interface RowCommon {
  /** The environment variable. */
  readonly name: string;
  readonly scope: SettingScope;
  /** One line for the README's "meaning" column (markdown): the user-facing contract. */
  readonly doc: string;
  /** The README's default cell when the default is not a plain value (computed, or absent with a consequence). */
  readonly defaultText?: string;
  /** Shown in parentheses after the default value in the README, e.g. `off` for 0. */
  readonly defaultNote?: string;
}

/**
 * One setting: its variable, how its text is read, its default as a value (`undefined`: unset) and
 * its documentation. Discriminated by `type`, so a default of the wrong type does not compile.
 */
export type SettingRow = RowCommon &
  (
    | {
        readonly type: 'integer';
        readonly min: number;
        readonly max: number;
        /** A tighter upper bound terraform/variables.tf enforces because the function's own timeout ends it sooner. */
        readonly deployMax?: number;
        readonly default: number | undefined;
      }
    | { readonly type: 'enum'; readonly values: readonly string[]; readonly default: string | undefined }
    | { readonly type: 'boolean'; readonly default: boolean | undefined }
    /** Comma-separated; blanks around and empty items are dropped. */
    | { readonly type: 'list' | 'urlList'; readonly default: readonly string[] | undefined }
    /** `message` is the refusal, after `is not valid: `. */
    | { readonly type: 'pattern'; readonly pattern: RegExp; readonly message: string; readonly default: string | undefined }
    | { readonly type: 'url' | 'string'; readonly default: string | undefined }
  );

const NAME = { type: 'pattern', pattern: /^[A-Za-z0-9_.-]+$/, message: 'only letters, digits, _ . -' } as const;
const DAY = 24 * 3600;

/**
 * Every setting the service knows, in the README's order: the single source of the parser's
 * types, bounds and defaults, of the README's Configuration table and of the Terraform checks.
 *
 * @example
 * const lifetime = SETTINGS.find((s) => s.name === 'SESSION_LIFETIME_SECONDS'); // { type: 'integer', min: 1, …, default: 3600 }
 */
export const SETTINGS = [
  {
    name: 'GOOGLE_CLOUD_PROJECT',
    type: 'string',
    default: undefined,
    defaultText: 'from the environment',
    scope: 'deploy',
    doc: 'project id; also in the default cookie name; required with the Datastore store',
  },
  {
    name: 'DATASTORE_EMULATOR_HOST',
    type: 'string',
    default: undefined,
    scope: 'local',
    doc: 'the standard emulator switches of the Google clients',
  },
  {
    name: 'PUBSUB_EMULATOR_HOST',
    type: 'string',
    default: undefined,
    scope: 'local',
    doc: 'the standard emulator switches of the Google clients',
  },
  {
    name: 'DATASTORE_EMULATOR_TRANSACTIONS',
    type: 'enum',
    values: ['separate-begin', 'lookup'],
    default: 'separate-begin',
    scope: 'local',
    doc: 'with `DATASTORE_EMULATOR_HOST`: how a transaction opens. `separate-begin` (a `beginTransaction` call first: the Firestore emulator needs it) or `lookup` (its first lookup opens it, as in production: one round trip less per write; the legacy Datastore emulator handles it). Without an emulator it is always `lookup`',
  },
  {
    name: 'SESSION_STORE',
    type: 'enum',
    values: ['datastore', 'memory'],
    default: 'datastore',
    scope: 'local',
    doc: '`datastore`, or `memory` (local use only, with a warning)',
  },
  {
    name: 'SESSION_FORMAT',
    type: 'enum',
    values: ['native', 'viur'],
    default: 'native',
    scope: 'deploy',
    doc: "`native` (this service's own entity), or `viur`: the entities exactly as a ViUR 3.8 app stores them, served side by side with that app ([docs/viur.md](docs/viur.md))",
  },
  { name: 'SESSION_KIND', ...NAME, default: 'viur-session', scope: 'deploy', doc: 'Datastore kind' },
  { name: 'SESSION_NAMESPACE', ...NAME, default: undefined, defaultText: 'none', scope: 'deploy', doc: 'Datastore namespace' },
  {
    name: 'SESSION_DATABASE',
    ...NAME,
    default: undefined,
    defaultText: '`(default)`',
    scope: 'deploy',
    doc: 'Firestore database id in Datastore mode',
  },
  {
    name: 'SESSION_STORE_TIMEOUT_MS',
    type: 'integer',
    min: 100,
    max: 600_000,
    default: 5000,
    scope: 'deploy',
    doc:
      'deadline of each Datastore call of a request; past it the request gets 503 ' +
      "(the cleanup's and kill's queries and delete commits have their own 60 s deadline and are retried)",
  },
  {
    name: 'SESSION_READ_CACHE_MS',
    type: 'integer',
    min: 0,
    max: 60_000,
    default: 0,
    defaultNote: 'off',
    scope: 'deploy',
    doc:
      'opt-in per-instance read cache: a session read or written on this instance is served from memory for this long ' +
      '(at most 60000); see [Read cache](#read-cache)',
  },
  {
    name: 'SESSION_LOG_REQUESTS',
    type: 'enum',
    values: ['all', 'errors'],
    default: 'errors',
    scope: 'deploy',
    doc:
      '`errors`: sessionApi writes a structured line (route template, status, latency, `errorCode`, `errorCause`) for each ' +
      "request answered 400 or above; `all`: for every request (the local launcher uses `all`). Cloud Run's own request log " +
      "records every request either way, so a line per success would mostly double the log volume, and it was about 4 % of sessionApi's " +
      'CPU per request (bench/RESULTS.md)',
  },
  {
    name: 'SESSION_LOG_USER_IDS',
    type: 'enum',
    values: ['digest', 'raw'],
    default: 'digest',
    scope: 'deploy',
    doc:
      '`digest`: kill log lines carry `userDigest`, a keyed digest of the user id (HMAC-SHA-256, 16 hex digits), never the id ' +
      'itself; `raw`: they carry the id as `user` (opt-in: ids are often e-mail addresses). `npm run user-digest -- <user>` ' +
      'computes the digest to search for (docs/operations.md#finding-a-users-log-lines)',
  },
  {
    name: 'SESSION_LOG_DIGEST_KEY',
    type: 'string',
    default: undefined,
    defaultText: 'derived from the project id (Terraform sets a random one)',
    scope: 'deploy',
    doc:
      'secret key of the user digest in log lines; without it the key is derived from the project id, which hides ids from a ' +
      'casual reader but not from anyone who can guess them, so a deployment sets a random one (terraform/ generates it)',
  },
  { name: 'SESSION_LIFETIME_SECONDS', type: 'integer', min: 1, max: 366 * DAY, default: 3600, scope: 'deploy', doc: 'idle lifetime' },
  {
    name: 'SESSION_REFRESH_INTERVAL_SECONDS',
    type: 'integer',
    min: 0,
    max: DAY,
    default: 300,
    scope: 'deploy',
    doc: 'a read rewrites `lastseen` only when it is older than this',
  },
  {
    name: 'SESSION_COOKIE_NAME',
    type: 'string',
    default: undefined,
    defaultText: '`__Host-viur_cookie_<project>`',
    scope: 'deploy',
    doc:
      'the `__Host-` prefix keeps sibling subdomains from planting a cookie of the same name (browsers take it only host-only, ' +
      '`Secure`, `Path=/`); `__session` behind Firebase Hosting (it forwards no other cookie). Changing the name logs everyone out ' +
      "once: the old cookie is no longer read. In viur format the default is the ViUR app's own `viur_cookie_<project>`",
  },
  {
    name: 'SESSION_SAME_SITE',
    type: 'enum',
    values: ['lax', 'strict', 'none', 'off'],
    default: 'lax',
    scope: 'deploy',
    doc: '`lax`, `strict`, `none` or `off` (no attribute)',
  },
  {
    name: 'SESSION_COOKIE_PERSISTENT',
    type: 'boolean',
    default: false,
    scope: 'deploy',
    doc:
      '`true`: the cookie gets `Max-Age` = lifetime, or what is left of the absolute lifetime when that is less ' +
      "(the seed's `sessionCookie=False`)",
  },
  {
    name: 'SESSION_PERSISTENT_FIELDS_ON_LOGIN',
    type: 'list',
    default: ['language'],
    scope: 'deploy',
    doc: 'comma-separated keys kept across login',
  },
  {
    name: 'SESSION_PERSISTENT_FIELDS_ON_LOGOUT',
    type: 'list',
    default: ['language'],
    scope: 'deploy',
    doc: 'comma-separated keys kept across logout',
  },
  {
    name: 'SESSION_MAX_DATA_BYTES',
    type: 'integer',
    min: 1024,
    max: 1_000_000,
    default: 786_432,
    scope: 'deploy',
    doc:
      'limit on the data exactly as stored: the UTF-8 length of its one JSON text. At most 1,000,000, which leaves room for the ' +
      "rest of the entity under Datastore's limit of 1,048,572 bytes: the key (kind, namespace, 64-character name: under 300 bytes), " +
      '`user` (≤ 501), five fixed properties (< 200), `securityKeys` (≤ 100 × 65) and the property names, under 8 KB in all. ' +
      'Should Datastore refuse an entity as too large anyway, the answer is 413 `too_large`',
  },
  {
    name: 'SESSION_MAX_DATA_KEYS',
    type: 'integer',
    min: 1,
    max: 100_000,
    default: 10_000,
    scope: 'deploy',
    doc:
      'most keys the data may hold (413 `too_many_keys` beyond; deleting keys stays possible). A request parses the data once, ' +
      'so its cost follows the bytes, bounded by `SESSION_MAX_DATA_BYTES`',
  },
  {
    name: 'SESSION_ABSOLUTE_LIFETIME_SECONDS',
    type: 'integer',
    min: 0,
    max: 366 * DAY,
    default: 7 * DAY,
    defaultNote: '7 days',
    scope: 'deploy',
    doc:
      'a session ends this long after its creation however busy it is (OWASP); login creates a new session, so the clock ' +
      'starts again. `expiresAt` is the earlier of the idle and the absolute end, so the cleanup and the TTL policy find it. ' +
      '`0` disables',
  },
  {
    name: 'SESSION_MAX_SECURITY_KEYS',
    type: 'integer',
    min: 1,
    max: 100,
    default: 16,
    scope: 'deploy',
    doc: 'one-time keys valid at once per session; the oldest is dropped beyond it',
  },
  {
    name: 'SESSION_MAX_SESSIONS_PER_USER',
    type: 'integer',
    min: 0,
    max: 10_000,
    default: 0,
    defaultNote: 'no limit',
    scope: 'deploy',
    doc:
      'sessions one user may have (at most 10,000); after a login, those beyond it end, least recently used first, a sign-in ' +
      "counting as use for a minute (see [A user's sessions](#a-users-sessions-devices))",
  },
  {
    name: 'SESSION_KILL_TOPIC',
    type: 'pattern',
    pattern: TOPIC_ID_PATTERN,
    message: 'not a Pub/Sub topic id',
    default: 'session-kill',
    scope: 'deploy',
    doc: 'topic kill messages are published to',
  },
  {
    name: 'SESSION_EVENTS_TOPIC',
    type: 'pattern',
    pattern: TOPIC_ID_PATTERN,
    message: 'not a Pub/Sub topic id',
    default: undefined,
    defaultNote: 'off',
    scope: 'deploy',
    doc:
      'publish session events (created, login, logout, reset, ended, expired) to this topic, at least once, through an outbox ' +
      'written in the same commit as each change (see [docs/events.md](docs/events.md)); unset: none are recorded',
  },
  {
    name: 'SESSION_KILL_PUSH_URL',
    type: 'url',
    default: undefined,
    scope: 'local',
    doc: 'local only: deliver kill messages as Pub/Sub push requests to this URL (`npm start` on the memory store)',
  },
  {
    name: 'SESSION_ADMIN_AUDIENCE',
    type: 'string',
    default: undefined,
    defaultText: 'none; required when `SESSION_ADMIN_PRINCIPALS` is set',
    scope: 'deploy',
    doc:
      "expected `aud` of privileged tokens (the URL callers use). Not taken from the request: its `Host` header is the caller's " +
      'choice, so any token of an allowed principal, minted for any other service, would pass',
  },
  {
    name: 'SESSION_ADMIN_PRINCIPALS',
    type: 'list',
    default: [],
    defaultText: 'empty: no privileged access',
    scope: 'deploy',
    doc: 'comma-separated service-account emails allowed on privileged routes',
  },
  {
    name: 'SESSION_ADMIN_JWKS_FILE',
    type: 'string',
    default: undefined,
    defaultText: "unset: Google's certificates",
    scope: 'local',
    doc: 'local/test only: verify privileged tokens against this JWKS file',
  },
  {
    name: 'SESSION_ALLOWED_ORIGINS',
    type: 'urlList',
    default: [],
    scope: 'deploy',
    doc:
      'comma-separated origins (`https://www.example.com`, with a port when not the default) allowed cross-origin ' +
      '(CORS with credentials) and cross-site',
  },
  {
    name: 'SESSION_DELETE_BATCH_SIZE',
    type: 'integer',
    min: 1,
    max: MAX_COMMIT_MUTATIONS,
    default: MAX_COMMIT_MUTATIONS,
    scope: 'deploy',
    doc: 'keys per delete commit (at most 500)',
  },
  {
    name: 'SESSION_DELETE_PARALLELISM',
    type: 'integer',
    min: 1,
    max: 32,
    default: 4,
    scope: 'deploy',
    doc: 'delete commits in flight at once',
  },
  {
    name: 'SESSION_CLEANUP_BUDGET_SECONDS',
    type: 'integer',
    min: 1,
    max: 3600,
    // The cleanup function and the scheduler's attempt deadline stop at 1800 s.
    deployMax: 1700,
    default: 1200,
    scope: 'deploy',
    doc: 'time one cleanup run may take',
  },
  {
    name: 'SESSION_CLEANUP_GRACE_SECONDS',
    type: 'integer',
    min: 0,
    max: 7 * DAY,
    default: 300,
    scope: 'deploy',
    doc: 'how long past `expiresAt` a session is kept',
  },
  {
    name: 'SESSION_KILL_BUDGET_SECONDS',
    type: 'integer',
    min: 1,
    max: 3600,
    // The kill function times out at 540 s; the rest is room to publish the continuation.
    deployMax: 480,
    default: 240,
    scope: 'deploy',
    doc: 'time one kill invocation may take before it continues in a follow-up message',
  },
  {
    name: 'SESSION_VIUR_RESWEEP_SECONDS',
    type: 'integer',
    min: 0,
    max: DAY,
    // App Engine's longest request (automatic scaling) is 600 s; a ViUR request that loaded a
    // killed session writes it back at its end at the latest. A minute more for clocks and the write.
    default: 660,
    scope: 'deploy',
    doc:
      '`viur` format: how long after a kill a second sweep deletes the killed sessions a ViUR request wrote back ' +
      '(longer than any request of the app can run; [docs/viur-kill-cleanup.md](docs/viur-kill-cleanup.md#no-resurrection))',
  },
  {
    name: 'K_SERVICE',
    type: 'string',
    default: undefined,
    defaultText: 'set by Cloud Run',
    scope: 'platform',
    doc:
      "not to be set by hand: when present, the request log's `remoteIp` is the last `X-Forwarded-For` entry (the address " +
      "Google's front end saw; the leftmost is whatever the client wrote); otherwise the socket's peer",
  },
] as const satisfies readonly SettingRow[];

/** The name of any setting: the environment variables the service reads. */
export type ConfigVariable = (typeof SETTINGS)[number]['name'];

type RowOf<N extends ConfigVariable> = Extract<(typeof SETTINGS)[number], { readonly name: N }>;
type Parsed<R> = R extends { type: 'integer' }
  ? number
  : R extends { type: 'enum'; values: readonly (infer V)[] }
    ? V
    : R extends { type: 'boolean' }
      ? boolean
      : R extends { type: 'list' | 'urlList' }
        ? string[]
        : string;
/** What setting() returns for a variable: its parsed type, or undefined when the row has no default. */
export type SettingValue<N extends ConfigVariable> = Parsed<RowOf<N>> | (RowOf<N>['default'] extends undefined ? undefined : never);

/** Variables as process.env holds them. */
export type Environment = Record<string, string | undefined>;

const BY_NAME: ReadonlyMap<string, SettingRow> = new Map(SETTINGS.map((row) => [row.name, row]));

/**
 * The row of one variable.
 *
 * @example
 * settingRow('SESSION_DELETE_BATCH_SIZE').default; // 500
 */
export function settingRow(name: ConfigVariable): SettingRow {
  const row = BY_NAME.get(name);
  // Only reachable from untyped callers.
  if (row === undefined) throw new Error(`${name} is not a setting`);
  return row;
}

const splitList = (raw: string) =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
const oneOf = (values: readonly string[], raw: string) =>
  values.includes(raw) ? { value: raw } : { error: `expected one of ${values.join(', ')}` };
const BOOLEAN_SPELLINGS = ['true', 'false', '1', '0'];

/**
 * Hand-written rather than a schema library: this runs at every cold start, and loading zod took
 * about as long as loading the Datastore client (bench/: cold start).
 */
function check(row: SettingRow, raw: string): { value: unknown } | { error: string } {
  switch (row.type) {
    case 'integer': {
      const n = Number(raw);
      if (!Number.isInteger(n)) return { error: 'expected an integer' };
      if (n < row.min) return { error: `too small: expected at least ${row.min}` };
      if (n > row.max) return { error: `too big: expected at most ${row.max}` };
      return { value: n };
    }
    case 'enum':
      return oneOf(row.values, raw);
    case 'boolean': {
      const r = oneOf(BOOLEAN_SPELLINGS, raw);
      return 'error' in r ? r : { value: r.value === 'true' || r.value === '1' };
    }
    case 'list':
      return { value: splitList(raw) };
    case 'urlList': {
      const items = splitList(raw);
      const bad = items.find((u) => !URL.canParse(u));
      return bad === undefined ? { value: items } : { error: `invalid URL ${JSON.stringify(bad)}` };
    }
    case 'pattern':
      return row.pattern.test(raw) ? { value: raw } : { error: row.message };
    case 'url':
      return URL.canParse(raw) ? { value: raw } : { error: 'invalid URL' };
    case 'string':
      return { value: raw };
  }
}

/**
 * One variable read from `env` as its row says: blank or absent gives the row's default, anything
 * else is trimmed and checked; a value that fails stops start-up with a ConfigError naming it.
 *
 * @example
 * setting({ SESSION_LIFETIME_SECONDS: ' 60 ' }, 'SESSION_LIFETIME_SECONDS'); // 60
 * setting({}, 'SESSION_NAMESPACE'); // undefined
 * setting({ SESSION_DELETE_BATCH_SIZE: '501' }, 'SESSION_DELETE_BATCH_SIZE');
 * // throws ConfigError 'SESSION_DELETE_BATCH_SIZE: "501" is not valid: too big: expected at most 500'
 */
export function setting<N extends ConfigVariable>(env: Environment, name: N): SettingValue<N> {
  const row = settingRow(name);
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') {
    // A copy: callers own the lists in their Config.
    return (Array.isArray(row.default) ? [...(row.default as readonly string[])] : row.default) as SettingValue<N>;
  }
  const result = check(row, raw);
  if ('error' in result) throw new ConfigError(name, `${JSON.stringify(raw)} is not valid: ${result.error}`);
  return result.value as SettingValue<N>;
}
