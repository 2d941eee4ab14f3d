import { CONFIG_VARIABLES, loadConfig } from '../../../lib/setup/config';
import { ConfigError } from '../../../lib/core/errors';

const P = { GOOGLE_CLOUD_PROJECT: 'p' };
const load = (env: Record<string, string>) => loadConfig({ ...P, ...env });
const refused = (env: Record<string, string>, variable: string) => {
  expect(() => load(env)).toThrow(ConfigError);
  expect(() => load(env)).toThrow(new RegExp(`^${variable}: `));
};

describe('configuration', () => {
  test('defaults follow the README configuration table', () => {
    const c = loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' });
    expect(c).toMatchObject({
      projectId: 'p1',
      store: 'datastore',
      kind: 'viur-session',
      killTopic: 'session-kill',
      session: {
        lifetimeSeconds: 3600,
        refreshIntervalSeconds: 300,
        persistentFieldsOnLogin: ['language'],
        persistentFieldsOnLogout: ['language'],
        cookie: { name: '__Host-viur_cookie_p1', sameSite: 'lax', persistent: false },
      },
      admin: { principals: [], audience: undefined, jwksFile: undefined },
    });
  });

  test('values are parsed into types', () => {
    const c = loadConfig({
      GOOGLE_CLOUD_PROJECT: 'p',
      SESSION_LIFETIME_SECONDS: '60',
      SESSION_SAME_SITE: 'off',
      SESSION_COOKIE_PERSISTENT: 'true',
      SESSION_PERSISTENT_FIELDS_ON_LOGIN: ' language , cart ,',
      SESSION_ADMIN_PRINCIPALS: 'a@x.iam.gserviceaccount.com,b@y.iam.gserviceaccount.com',
      SESSION_ADMIN_AUDIENCE: 'https://sessions.example.com',
      SESSION_ALLOWED_ORIGINS: 'https://app.example.com/,https://x.example',
    });
    expect(c.session.lifetimeSeconds).toBe(60);
    expect(c.session.cookie.sameSite).toBe(false);
    expect(c.session.cookie.persistent).toBe(true);
    expect(c.session.persistentFieldsOnLogin).toEqual(['language', 'cart']);
    expect(c.admin.principals).toHaveLength(2);
    expect(c.allowedOrigins).toEqual(['https://app.example.com', 'https://x.example']);
  });

  test.each([
    ['SESSION_STORE', 'redis'],
    ['SESSION_LIFETIME_SECONDS', 'ten'],
    ['SESSION_LIFETIME_SECONDS', '0'],
    ['SESSION_LIFETIME_SECONDS', '1.5'],
    ['SESSION_SAME_SITE', 'Lax '.repeat(2)],
    ['SESSION_COOKIE_PERSISTENT', 'yes'],
    ['SESSION_COOKIE_NAME', 'bad name;'],
    ['SESSION_COOKIE_NAME', '__host-sid'],
    ['SESSION_MAX_DATA_BYTES', '2000000'],
    ['SESSION_KILL_TOPIC', 'no spaces allowed'],
    ['SESSION_ALLOWED_ORIGINS', 'not-a-url'],
    ['SESSION_DELETE_BATCH_SIZE', '501'],
  ])('a bad %s (%p) stops start-up with a message naming it', (variable, value) => {
    expect(() => loadConfig({ GOOGLE_CLOUD_PROJECT: 'p', [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ GOOGLE_CLOUD_PROJECT: 'p', [variable]: value })).toThrow(new RegExp(`^${variable}: `));
  });

  test('the production default store needs a project; nothing falls back to memory', () => {
    expect(() => loadConfig({})).toThrow(/^GOOGLE_CLOUD_PROJECT: /);
    expect(loadConfig({ SESSION_STORE: 'memory' }).store).toBe('memory');
  });

  test('every documented variable is known', () => {
    for (const name of [
      'GOOGLE_CLOUD_PROJECT',
      'SESSION_STORE',
      'SESSION_KIND',
      'SESSION_LIFETIME_SECONDS',
      'SESSION_COOKIE_NAME',
      'SESSION_SAME_SITE',
      'SESSION_COOKIE_PERSISTENT',
      'SESSION_PERSISTENT_FIELDS_ON_LOGIN',
      'SESSION_PERSISTENT_FIELDS_ON_LOGOUT',
      'SESSION_KILL_TOPIC',
      'SESSION_ADMIN_AUDIENCE',
      'SESSION_ADMIN_PRINCIPALS',
      'SESSION_ADMIN_JWKS_FILE',
      'DATASTORE_EMULATOR_HOST',
      'PUBSUB_EMULATOR_HOST',
    ]) {
      expect(CONFIG_VARIABLES).toHaveProperty(name);
    }
  });
});

/** Each variable really reaches the configuration, with its bounds exactly where the README says. */
describe('every variable is read', () => {
  test('a non-default value of each variable shows up in the configuration', () => {
    const c = loadConfig({
      GOOGLE_CLOUD_PROJECT: 'proj',
      SESSION_FORMAT: 'viur',
      SESSION_KIND: 'my-kind',
      SESSION_NAMESPACE: 'ns.1',
      SESSION_DATABASE: 'db_2',
      SESSION_STORE_TIMEOUT_MS: '1234',
      SESSION_READ_CACHE_MS: '250',
      SESSION_LOG_REQUESTS: 'all',
      SESSION_LOG_USER_IDS: 'raw',
      SESSION_LOG_DIGEST_KEY: 'k-1',
      DATASTORE_EMULATOR_HOST: 'localhost:8081',
      DATASTORE_EMULATOR_TRANSACTIONS: 'lookup',
      K_SERVICE: 'session-api',
      SESSION_LIFETIME_SECONDS: '120',
      SESSION_REFRESH_INTERVAL_SECONDS: '7',
      SESSION_COOKIE_NAME: 'sid',
      SESSION_SAME_SITE: 'strict',
      SESSION_COOKIE_PERSISTENT: '1',
      SESSION_PERSISTENT_FIELDS_ON_LOGIN: 'a,b',
      SESSION_PERSISTENT_FIELDS_ON_LOGOUT: 'c',
      SESSION_MAX_DATA_BYTES: '2048',
      SESSION_MAX_SECURITY_KEYS: '3',
      SESSION_MAX_DATA_KEYS: '50',
      SESSION_ABSOLUTE_LIFETIME_SECONDS: '0',
      SESSION_MAX_SESSIONS_PER_USER: '5',
      SESSION_KILL_TOPIC: 'kills',
      SESSION_KILL_PUSH_URL: 'http://localhost:8080/push',
      SESSION_ADMIN_AUDIENCE: 'https://s.example',
      SESSION_ADMIN_PRINCIPALS: 'a@x.example',
      SESSION_ADMIN_JWKS_FILE: '/tmp/jwks.json',
      SESSION_ALLOWED_ORIGINS: 'https://app.example/path',
      SESSION_DELETE_BATCH_SIZE: '100',
      SESSION_DELETE_PARALLELISM: '2',
      SESSION_CLEANUP_BUDGET_SECONDS: '60',
      SESSION_CLEANUP_GRACE_SECONDS: '0',
      SESSION_KILL_BUDGET_SECONDS: '30',
      SESSION_VIUR_RESWEEP_SECONDS: '90',
    });
    expect(c).toEqual({
      projectId: 'proj',
      store: 'datastore',
      format: 'viur',
      kind: 'my-kind',
      namespace: 'ns.1',
      databaseId: 'db_2',
      storeTimeoutMs: 1234,
      readCacheMs: 250,
      logRequests: 'all',
      logUserIds: 'raw',
      logDigestKey: 'k-1',
      datastoreEmulatorHost: 'localhost:8081',
      emulatorTransactions: 'lookup',
      behindGoogleFrontEnd: true,
      session: {
        lifetimeSeconds: 120,
        refreshIntervalSeconds: 7,
        persistentFieldsOnLogin: ['a', 'b'],
        persistentFieldsOnLogout: ['c'],
        maxDataBytes: 2048,
        maxSecurityKeys: 3,
        maxDataKeys: 50,
        absoluteLifetimeSeconds: 0,
        maxSessionsPerUser: 5,
        cookie: { name: 'sid', sameSite: 'strict', persistent: true },
      },
      killTopic: 'kills',
      killPushUrl: 'http://localhost:8080/push',
      admin: { audience: 'https://s.example', principals: ['a@x.example'], jwksFile: '/tmp/jwks.json' },
      allowedOrigins: ['https://app.example'],
      deletion: {
        batchSize: 100,
        parallelism: 2,
        cleanupBudgetSeconds: 60,
        cleanupGraceSeconds: 0,
        killBudgetSeconds: 30,
        viurResweepSeconds: 90,
      },
    });
    // Every variable loadConfig reads is documented (the README table and Terraform are built from this list).
    expect(Object.keys(CONFIG_VARIABLES)).toEqual(
      expect.arrayContaining(['SESSION_KILL_PUSH_URL', 'SESSION_READ_CACHE_MS', 'SESSION_DATABASE', 'SESSION_NAMESPACE']),
    );
  });

  test('defaults of the settings the first defaults test does not show', () => {
    const c = load({});
    expect(c).toMatchObject({
      namespace: undefined,
      databaseId: undefined,
      storeTimeoutMs: 5000,
      readCacheMs: 0,
      logRequests: 'errors',
      datastoreEmulatorHost: undefined,
      emulatorTransactions: 'separate-begin',
      behindGoogleFrontEnd: false,
      killPushUrl: undefined,
      allowedOrigins: [],
      session: { maxDataBytes: 786_432, maxSecurityKeys: 16, maxDataKeys: 10_000, absoluteLifetimeSeconds: 604_800, maxSessionsPerUser: 0 },
      deletion: {
        batchSize: 500,
        parallelism: 4,
        cleanupBudgetSeconds: 1200,
        cleanupGraceSeconds: 300,
        killBudgetSeconds: 240,
        viurResweepSeconds: 660,
      },
    });
  });

  test('an empty or blank variable means its default; values are trimmed', () => {
    const c = load({ SESSION_LIFETIME_SECONDS: '', SESSION_KIND: '   ', SESSION_COOKIE_NAME: '', SESSION_SAME_SITE: ' strict ' });
    expect(c.session.lifetimeSeconds).toBe(3600);
    expect(c.kind).toBe('viur-session');
    expect(c.session.cookie.name).toBe('__Host-viur_cookie_p');
    expect(c.session.cookie.sameSite).toBe('strict');
  });

  test('SESSION_COOKIE_PERSISTENT: true/1 on, false/0 off, anything else refused', () => {
    expect(load({ SESSION_COOKIE_PERSISTENT: 'true' }).session.cookie.persistent).toBe(true);
    expect(load({ SESSION_COOKIE_PERSISTENT: '1' }).session.cookie.persistent).toBe(true);
    expect(load({ SESSION_COOKIE_PERSISTENT: 'false' }).session.cookie.persistent).toBe(false);
    expect(load({ SESSION_COOKIE_PERSISTENT: '0' }).session.cookie.persistent).toBe(false);
    expect(() => load({ SESSION_COOKIE_PERSISTENT: 'TRUE' })).toThrow(/expected one of true, false, 1, 0/);
  });

  test('SESSION_SAME_SITE accepts lax, strict, none and off (no SameSite attribute)', () => {
    expect(load({ SESSION_SAME_SITE: 'lax' }).session.cookie.sameSite).toBe('lax');
    expect(load({ SESSION_SAME_SITE: 'none' }).session.cookie.sameSite).toBe('none');
    expect(load({ SESSION_SAME_SITE: 'off' }).session.cookie.sameSite).toBe(false);
  });

  test('the project comes from GOOGLE_CLOUD_PROJECT, else GCLOUD_PROJECT; the memory store runs without one', () => {
    expect(loadConfig({ GCLOUD_PROJECT: ' legacy ' }).projectId).toBe('legacy');
    expect(loadConfig({ GOOGLE_CLOUD_PROJECT: 'a', GCLOUD_PROJECT: 'b' }).projectId).toBe('a');
    const local = loadConfig({ SESSION_STORE: 'memory' });
    expect(local.projectId).toBe('local');
    expect(local.session.cookie.name).toBe('__Host-viur_cookie_local');
    expect(() => loadConfig({ SESSION_STORE: 'datastore', GOOGLE_CLOUD_PROJECT: ' ' })).toThrow(
      new ConfigError('GOOGLE_CLOUD_PROJECT', 'must be set when SESSION_STORE is datastore'),
    );
  });

  test('principals without an audience stop start-up; an audience alone is fine', () => {
    expect(() => load({ SESSION_ADMIN_PRINCIPALS: 'a@x.example' })).toThrow(
      /^SESSION_ADMIN_AUDIENCE: must be set when SESSION_ADMIN_PRINCIPALS is/,
    );
    expect(load({ SESSION_ADMIN_PRINCIPALS: ' , ' }).admin.principals).toEqual([]);
    expect(load({ SESSION_ADMIN_AUDIENCE: 'https://s.example' }).admin).toEqual({
      audience: 'https://s.example',
      principals: [],
      jwksFile: undefined,
    });
  });
});

describe('integer bounds: exactly at a bound is accepted, one beyond is refused with the bound named', () => {
  test.each([
    ['SESSION_LIFETIME_SECONDS', 1, 366 * 24 * 3600],
    ['SESSION_REFRESH_INTERVAL_SECONDS', 0, 24 * 3600],
    ['SESSION_STORE_TIMEOUT_MS', 100, 600_000],
    ['SESSION_READ_CACHE_MS', 0, 60_000],
    ['SESSION_MAX_DATA_BYTES', 1024, 1_000_000],
    ['SESSION_MAX_SECURITY_KEYS', 1, 100],
    ['SESSION_MAX_DATA_KEYS', 1, 100_000],
    ['SESSION_ABSOLUTE_LIFETIME_SECONDS', 0, 366 * 24 * 3600],
    ['SESSION_MAX_SESSIONS_PER_USER', 0, 10_000],
    ['SESSION_DELETE_BATCH_SIZE', 1, 500],
    ['SESSION_DELETE_PARALLELISM', 1, 32],
    ['SESSION_CLEANUP_BUDGET_SECONDS', 1, 3600],
    ['SESSION_CLEANUP_GRACE_SECONDS', 0, 7 * 24 * 3600],
    ['SESSION_KILL_BUDGET_SECONDS', 1, 3600],
  ])('%s: %d … %d', (variable, min, max) => {
    expect(() => load({ [variable]: String(min) })).not.toThrow();
    expect(() => load({ [variable]: String(max) })).not.toThrow();
    expect(() => load({ [variable]: String(min - 1) })).toThrow(
      new ConfigError(variable, `"${min - 1}" is not valid: too small: expected at least ${min}`),
    );
    expect(() => load({ [variable]: String(max + 1) })).toThrow(
      new ConfigError(variable, `"${max + 1}" is not valid: too big: expected at most ${max}`),
    );
    expect(() => load({ [variable]: `${min}.5` })).toThrow(new ConfigError(variable, `"${min}.5" is not valid: expected an integer`));
  });
});

describe('name patterns are anchored at both ends', () => {
  test.each(['SESSION_KIND', 'SESSION_NAMESPACE', 'SESSION_DATABASE'])('%s', (variable) => {
    expect(() => load({ [variable]: 'a-b_c.9' })).not.toThrow();
    refused({ [variable]: 'a b' }, variable);
    refused({ [variable]: '/abc' }, variable);
    refused({ [variable]: 'abc/' }, variable);
    expect(() => load({ [variable]: 'abc/' })).toThrow(/only letters, digits, _ \. -/);
  });

  test('SESSION_KILL_TOPIC: a letter first, 3 to 255 characters, nothing outside the set at either end', () => {
    expect(load({ SESSION_KILL_TOPIC: 'abc' }).killTopic).toBe('abc');
    expect(load({ SESSION_KILL_TOPIC: 'a' + 'b'.repeat(254) }).killTopic).toHaveLength(255);
    for (const bad of ['ab', '1abc', 'a' + 'b'.repeat(255), 'abc/', '/abc', 'ab c']) {
      expect(() => load({ SESSION_KILL_TOPIC: bad })).toThrow(/^SESSION_KILL_TOPIC: .* not a Pub\/Sub topic id/);
    }
  });

  test('SESSION_KILL_PUSH_URL and SESSION_ALLOWED_ORIGINS must be URLs; the bad origin is named', () => {
    expect(() => load({ SESSION_KILL_PUSH_URL: 'localhost' })).toThrow(/^SESSION_KILL_PUSH_URL: "localhost" is not valid: invalid URL/);
    expect(() => load({ SESSION_ALLOWED_ORIGINS: 'https://a.example, nope' })).toThrow(/invalid URL "nope"/);
    expect(load({ SESSION_ALLOWED_ORIGINS: ' , https://a.example:8443/x ,' }).allowedOrigins).toEqual(['https://a.example:8443']);
  });

  test('SESSION_ALLOWED_ORIGINS takes http(s) origins only: one that would serialise as "null" stops the start, named', () => {
    for (const origin of [
      'capacitor://localhost',
      'chrome-extension://abc',
      'file:///home/x/index.html',
      'ws://a.example',
      'ftp://a.example',
    ]) {
      refused({ SESSION_ALLOWED_ORIGINS: `https://a.example,${origin}` }, 'SESSION_ALLOWED_ORIGINS');
      expect(() => load({ SESSION_ALLOWED_ORIGINS: origin })).toThrow(`${origin} is not an http(s) origin`);
    }
    expect(load({ SESSION_ALLOWED_ORIGINS: 'http://localhost:3000,HTTPS://A.Example' }).allowedOrigins).toEqual([
      'http://localhost:3000',
      'https://a.example',
    ]);
  });

  test('SESSION_LOG_REQUESTS accepts all and errors only', () => {
    expect(load({ SESSION_LOG_REQUESTS: 'errors' }).logRequests).toBe('errors');
    expect(() => load({ SESSION_LOG_REQUESTS: 'none' })).toThrow(
      /^SESSION_LOG_REQUESTS: "none" is not valid: expected one of all, errors$/,
    );
  });

  test('SESSION_STORE accepts memory and datastore only', () => {
    expect(load({ SESSION_STORE: 'memory' }).store).toBe('memory');
    expect(() => load({ SESSION_STORE: 'Memory' })).toThrow(/expected one of datastore, memory/);
  });
});

describe('viur format', () => {
  test('the cookie defaults to the ViUR app`s own name, viur_cookie_<project>; an explicit name wins', () => {
    expect(loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1', SESSION_FORMAT: 'viur' }).session.cookie.name).toBe('viur_cookie_p1');
    expect(loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1' }).session.cookie.name).toBe('__Host-viur_cookie_p1');
    expect(loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1', SESSION_FORMAT: 'viur', SESSION_COOKIE_NAME: 'sid' }).session.cookie.name).toBe('sid');
  });

  test('the memory store is refused: a ViUR app`s entities live in Datastore', () => {
    expect(() => loadConfig({ SESSION_STORE: 'memory', SESSION_FORMAT: 'viur' })).toThrow(/^SESSION_FORMAT: .*SESSION_STORE=datastore/);
  });

  test('session events are refused: the outbox lives with native entities, and a ViUR app records none', () => {
    expect(() => loadConfig({ GOOGLE_CLOUD_PROJECT: 'p1', SESSION_FORMAT: 'viur', SESSION_EVENTS_TOPIC: 'session-events' })).toThrow(
      /^SESSION_EVENTS_TOPIC: .*native/,
    );
  });
});
