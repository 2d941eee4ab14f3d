import { CONFIG_VARIABLES, loadConfig } from '../../../lib/setup/config';
import { ConfigError } from '../../../lib/core/errors';

describe('configuration', () => {
  test('defaults follow SPEC §4', () => {
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
    for (const name of ['GOOGLE_CLOUD_PROJECT', 'SESSION_STORE', 'SESSION_KIND', 'SESSION_LIFETIME_SECONDS', 'SESSION_COOKIE_NAME', 'SESSION_SAME_SITE', 'SESSION_COOKIE_PERSISTENT', 'SESSION_PERSISTENT_FIELDS_ON_LOGIN', 'SESSION_PERSISTENT_FIELDS_ON_LOGOUT', 'SESSION_KILL_TOPIC', 'SESSION_ADMIN_AUDIENCE', 'SESSION_ADMIN_PRINCIPALS', 'SESSION_ADMIN_JWKS_FILE', 'DATASTORE_EMULATOR_HOST', 'PUBSUB_EMULATOR_HOST']) {
      expect(CONFIG_VARIABLES).toHaveProperty(name);
    }
  });
});
