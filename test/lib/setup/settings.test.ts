import { ConfigError } from '../../../lib/core/errors';
import { CONFIG_VARIABLES } from '../../../lib/setup/config';
import { type ConfigVariable, SETTINGS, type SettingRow, setting, settingRow } from '../../../lib/setup/settings';

// Widened: the optional fields are absent from the literal types of the rows that leave them out.
const ROWS: readonly SettingRow[] = SETTINGS;

/** The text a variable would hold to mean `value`. */
const asText = (value: unknown) => (Array.isArray(value) ? value.join(',') : String(value));

describe('SETTINGS', () => {
  test('names each variable once; CONFIG_VARIABLES is its name → doc view', () => {
    const names = SETTINGS.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(Object.keys(CONFIG_VARIABLES)).toEqual(names);
    for (const s of SETTINGS) expect(CONFIG_VARIABLES[s.name]).toBe(s.doc);
  });

  test.each(ROWS.filter((s) => s.default !== undefined).map((s) => [s.name as ConfigVariable, s] as const))(
    "%s: the default is a value the row's own parser accepts and gives back",
    (name, row) => {
      expect(setting({ [name]: asText(row.default) }, name)).toEqual(row.default);
      expect(setting({}, name)).toEqual(row.default);
    },
  );

  test.each(ROWS.filter((s) => s.type === 'integer').map((s) => [s.name, s] as const))(
    '%s: min ≤ default ≤ max, a deployment bound inside, and every "at most N" of the doc is the max',
    (_name, row) => {
      if (row.type !== 'integer') throw new Error('filtered above');
      expect(row.min).toBeLessThanOrEqual(row.max);
      if (row.default !== undefined) expect(row.default).toBeGreaterThanOrEqual(row.min);
      if (row.default !== undefined) expect(row.default).toBeLessThanOrEqual(row.deployMax ?? row.max);
      if (row.deployMax !== undefined) expect(row.deployMax).toBeLessThan(row.max);
      for (const m of row.doc.matchAll(/at most ([\d,]+)/gi)) expect(Number(m[1].replace(/,/g, ''))).toBe(row.max);
    },
  );
});

describe('setting()', () => {
  test('blank or absent: the default, and a list default is a fresh copy each time', () => {
    expect(setting({ SESSION_KIND: ' \t' }, 'SESSION_KIND')).toBe('viur-session');
    const a = setting({}, 'SESSION_PERSISTENT_FIELDS_ON_LOGIN');
    a.push('mutated');
    expect(setting({}, 'SESSION_PERSISTENT_FIELDS_ON_LOGIN')).toEqual(['language']);
    expect(settingRow('SESSION_PERSISTENT_FIELDS_ON_LOGIN').default).toEqual(['language']);
  });

  test('a refused value names the variable, the raw text and the reason', () => {
    expect(() => setting({ SESSION_MAX_SECURITY_KEYS: ' 0 ' }, 'SESSION_MAX_SECURITY_KEYS')).toThrow(
      new ConfigError('SESSION_MAX_SECURITY_KEYS', '"0" is not valid: too small: expected at least 1'),
    );
  });

  test('an unknown name (only an untyped caller can pass one) is an error, not undefined', () => {
    expect(() => setting({}, 'SESSION_NOPE' as ConfigVariable)).toThrow('SESSION_NOPE is not a setting');
  });
});
