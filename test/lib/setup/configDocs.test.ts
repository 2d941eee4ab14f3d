import * as fs from 'node:fs';
import * as path from 'node:path';
import { configurationTable, configurationTableSpan, withConfigurationTable } from '../../../lib/setup/configDocs';
import { SETTINGS } from '../../../lib/setup/settings';

const README = path.resolve(__dirname, '..', '..', '..', 'README.md');
const REGENERATE = 'regenerate it from lib/setup/settings.ts with `npm run docs:config` (never edit the table by hand)';

describe("README.md's Configuration table", () => {
  test('is exactly the table generated from SETTINGS', () => {
    const readme = fs.readFileSync(README, 'utf8');
    const span = configurationTableSpan(readme);
    if (!span) throw new Error(`README.md has no table under "## Configuration"; ${REGENERATE}`);
    const current = readme.slice(...span).split('\n');
    const expected = configurationTable().split('\n');
    const line = expected.findIndex((l, i) => current[i] !== l);
    if (line !== -1 || current.length !== expected.length) {
      const at = line === -1 ? expected.length : line;
      throw new Error(
        `README.md's Configuration table differs from SETTINGS at table line ${at + 1}; ${REGENERATE}.\n` +
          `README:    ${current[at] ?? '(no line)'}\ngenerated: ${expected[at] ?? '(no line)'}`,
      );
    }
  });
});

describe('configurationTable()', () => {
  test('one line per setting, in the order of SETTINGS; neighbours with the same default and meaning share one', () => {
    const lines = configurationTable().split('\n');
    expect(lines.slice(0, 2)).toEqual(['| variable | default | meaning |', '|---|---|---|']);
    const named = lines.slice(2).flatMap((l) => [...l.split(' | ')[0].matchAll(/`(\w+)`/g)].map((m) => m[1]));
    expect(named).toEqual(SETTINGS.map((s) => s.name));
    const emulators = '| `DATASTORE_EMULATOR_HOST`, `PUBSUB_EMULATOR_HOST` | unset |';
    expect(lines).toContain(`${emulators} the standard emulator switches of the Google clients |`);
  });

  test('defaults: values in code spans, lists joined, an empty list "empty", unset, a note in parentheses, or the row\'s own text', () => {
    const lines = configurationTable().split('\n');
    const row = (name: string) => lines.find((l) => l.startsWith(`| \`${name}\` |`))?.split(' | ')[1];
    expect(row('SESSION_LIFETIME_SECONDS')).toBe('`3600`');
    expect(row('SESSION_COOKIE_PERSISTENT')).toBe('`false`');
    expect(row('SESSION_PERSISTENT_FIELDS_ON_LOGIN')).toBe('`language`');
    expect(row('SESSION_ALLOWED_ORIGINS')).toBe('empty');
    expect(row('SESSION_KILL_PUSH_URL')).toBe('unset');
    expect(row('SESSION_ABSOLUTE_LIFETIME_SECONDS')).toBe('`604800` (7 days)');
    expect(row('SESSION_COOKIE_NAME')).toBe('`__Host-viur_cookie_<project>`');
  });
});

describe('withConfigurationTable()', () => {
  const generated = configurationTable();

  test('replaces only the table of the Configuration section', () => {
    const readme = '# T\n\n## Configuration\n\nText.\n\n| old |\n|---|\n| x |\n\nAfter.\n\n## Next\n\n| keep |\n';
    expect(withConfigurationTable(readme)).toBe(`# T\n\n## Configuration\n\nText.\n\n${generated}\n\nAfter.\n\n## Next\n\n| keep |\n`);
    expect(withConfigurationTable(withConfigurationTable(readme))).toBe(withConfigurationTable(readme));
  });

  test("refuses a README whose Configuration section has no table rather than take the next section's", () => {
    expect(configurationTableSpan('## Configuration\n\nNone here.\n\n## Next\n\n| keep |\n')).toBeUndefined();
    expect(configurationTableSpan('# No such section\n\n| keep |\n')).toBeUndefined();
    expect(() => withConfigurationTable('## Configuration\n\nNone.\n')).toThrow(/no table after "## Configuration"/);
  });
});
