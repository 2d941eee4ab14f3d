import * as fs from 'node:fs';
import * as path from 'node:path';
import { SETTINGS, type SettingRow } from './settings';

const HEADER = ['| variable | default | meaning |', '|---|---|---|'];

/** A pipe would end the cell early. */
const cell = (text: string) => text.replace(/\|/g, '\\|');

function defaultCell(row: SettingRow): string {
  if (row.defaultText !== undefined) return row.defaultText;
  const value = row.default;
  let shown: string;
  if (value === undefined) shown = 'unset';
  else if (Array.isArray(value)) shown = value.length === 0 ? 'empty' : `\`${value.join(',')}\``;
  else shown = `\`${String(value)}\``;
  return row.defaultNote === undefined ? shown : `${shown} (${row.defaultNote})`;
}

/**
 * The README's Configuration table (markdown, no trailing newline), one line per row of SETTINGS
 * in its order; neighbouring rows with the same default and meaning share a line.
 *
 * @example
 * configurationTable().split('\n')[2]; // '| `GOOGLE_CLOUD_PROJECT` | from the environment | project id; … |'
 */
export function configurationTable(): string {
  const lines: { names: string[]; default: string; doc: string }[] = [];
  for (const row of SETTINGS) {
    const last = lines.at(-1);
    const shown = defaultCell(row);
    if (last && last.default === shown && last.doc === row.doc) last.names.push(row.name);
    else lines.push({ names: [row.name], default: shown, doc: row.doc });
  }
  const body = lines.map((l) => `| ${l.names.map((n) => `\`${n}\``).join(', ')} | ${cell(l.default)} | ${cell(l.doc)} |`);
  return [...HEADER, ...body].join('\n');
}

/**
 * Where the table sits in a README: the first block of `|` lines in the `## Configuration` section, as
 * [start, end) character offsets; undefined when there is none.
 *
 * @example
 * const [start, end] = configurationTableSpan(readme)!; readme.slice(start, end); // '| variable | default | meaning |\n…'
 */
export function configurationTableSpan(readme: string): [number, number] | undefined {
  const heading = /^## Configuration[ \t]*$/m.exec(readme);
  if (!heading) return undefined;
  const section = readme.slice(heading.index + heading[0].length);
  // Only this section's table: a later section's must never be overwritten.
  const next = /^## /m.exec(section);
  const table = /^\|.*(?:\n\|.*)*/m.exec(next ? section.slice(0, next.index) : section);
  if (!table) return undefined;
  const start = heading.index + heading[0].length + table.index;
  return [start, start + table[0].length];
}

/**
 * `readme` with its Configuration table replaced by configurationTable().
 *
 * @example
 * fs.writeFileSync('README.md', withConfigurationTable(fs.readFileSync('README.md', 'utf8')));
 */
export function withConfigurationTable(readme: string): string {
  const span = configurationTableSpan(readme);
  if (!span) throw new Error('no table after "## Configuration"');
  return readme.slice(0, span[0]) + configurationTable() + readme.slice(span[1]);
}

// A script too (npm run docs:config), so regenerating the README needs no hand copying: --write rewrites
// ./README.md, without it the table goes to stdout for a look first.
if (require.main === module) {
  if (process.argv.includes('--write')) {
    const file = path.resolve('README.md');
    fs.writeFileSync(file, withConfigurationTable(fs.readFileSync(file, 'utf8')));
  } else {
    process.stdout.write(`${configurationTable()}\n`);
  }
}
