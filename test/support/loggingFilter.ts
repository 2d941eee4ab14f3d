/**
 * An evaluator for the subset of the Cloud Logging query language that terraform/monitoring.tf's
 * log-based metric filters use, so that test/terraform/monitoring.test.ts can run every filter
 * against the lines the functions really write. Cloud Logging itself cannot be reached from the
 * tests; this is the documented semantics of the subset, tested on its own in the same file.
 *
 * The subset (docs/operations.md#the-filter-subset):
 * - comparisons `FIELD OP VALUE` with OP one of `=`, `!=`, `>`, `>=`, `<`, `<=`, `:` (has: a
 *   case-insensitive substring), `=~` and `!~` (a regular expression found anywhere in the value),
 *   and `FIELD:*` (the field exists);
 * - FIELD a dotted path (`jsonPayload.message`, `resource.labels.service_name`, `httpRequest.status`);
 * - VALUE a double-quoted string (`\"` and `\\` escapes) or a bare word (number, `true`, `false`,
 *   a severity name);
 * - `NOT` (or a leading `-`), `OR`, `AND` and juxtaposition (an implicit AND), with the language's
 *   precedence: NOT binds tightest, then OR, then AND (`a OR b AND c` is `(a OR b) AND c`);
 *   parentheses group;
 * - numbers compare as numbers when both sides are numeric; `severity` compares by level
 *   (DEFAULT < DEBUG < INFO < NOTICE < WARNING < ERROR < CRITICAL < ALERT < EMERGENCY);
 * - a comparison on a field the entry does not have is false (`!=` included); `NOT` of it is true.
 *
 * Stricter than Cloud Logging where it is silent: `=` compares strings case-sensitively (a filter
 * that matches here also matches under a case-insensitive `=`, and the filters only compare values
 * the code writes in one spelling). Anything outside the subset is a parse error, so a filter
 * cannot drift out of what is tested.
 */

export type LogEntry = Record<string, unknown>;

type Op = '=' | '!=' | '>' | '>=' | '<' | '<=' | ':' | '=~' | '!~';

export type FilterNode =
  | { kind: 'and' | 'or'; items: FilterNode[] }
  | { kind: 'not'; item: FilterNode }
  | { kind: 'cmp'; path: string[]; op: Op; value: string; quoted: boolean };

const SEVERITIES = ['DEFAULT', 'DEBUG', 'INFO', 'NOTICE', 'WARNING', 'ERROR', 'CRITICAL', 'ALERT', 'EMERGENCY'];

type Token = { t: 'word' | 'string' | 'op' | '(' | ')' | '-'; v: string };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')') {
      tokens.push({ t: c, v: c });
      i++;
    } else if (c === '"') {
      let v = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new Error(`unterminated string in ${text}`);
        const d = text[i];
        if (d === '\\') {
          const e = text[i + 1];
          if (e !== '"' && e !== '\\') throw new Error(`unsupported escape \\${e} in ${text}`);
          v += e;
          i += 2;
        } else if (d === '"') {
          i++;
          break;
        } else {
          v += d;
          i++;
        }
      }
      tokens.push({ t: 'string', v });
    } else {
      const op = /^(=~|!~|!=|>=|<=|=|>|<|:)/.exec(text.slice(i));
      if (op) {
        tokens.push({ t: 'op', v: op[1] });
        i += op[1].length;
      } else if (c === '-' && (tokens.length === 0 || tokens[tokens.length - 1].t !== 'op')) {
        tokens.push({ t: '-', v: '-' });
        i++;
      } else {
        const word = /^[A-Za-z0-9_.*+-]+/.exec(text.slice(i));
        if (!word) throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in ${text}`);
        tokens.push({ t: 'word', v: word[0] });
        i += word[0].length;
      }
    }
  }
  return tokens;
}

/**
 * Parses a filter of the subset; throws on anything outside it.
 *
 * @example
 * parseFilter('severity>=ERROR AND jsonPayload.message="kill finished"');
 */
export function parseFilter(text: string): FilterNode {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = () => tokens[pos];
  const isKeyword = (w: string) => peek()?.t === 'word' && peek()?.v === w;

  // AND (explicit or implied by juxtaposition) binds loosest.
  function andExpr(): FilterNode {
    const items = [orExpr()];
    for (;;) {
      if (isKeyword('AND')) {
        pos++;
        items.push(orExpr());
      } else if (peek() && peek().t !== ')') {
        items.push(orExpr());
      } else break;
    }
    return items.length === 1 ? items[0] : { kind: 'and', items };
  }
  function orExpr(): FilterNode {
    const items = [unary()];
    while (isKeyword('OR')) {
      pos++;
      items.push(unary());
    }
    return items.length === 1 ? items[0] : { kind: 'or', items };
  }
  function unary(): FilterNode {
    if (isKeyword('NOT') || peek()?.t === '-') {
      pos++;
      return { kind: 'not', item: unary() };
    }
    if (peek()?.t === '(') {
      pos++;
      const inner = andExpr();
      if (peek()?.t !== ')') throw new Error(`missing ) in ${text}`);
      pos++;
      return inner;
    }
    const field = tokens[pos++];
    const op = tokens[pos++];
    const value = tokens[pos++];
    if (field?.t !== 'word' || ['AND', 'OR', 'NOT'].includes(field.v)) throw new Error(`expected a field at token ${pos - 3} in ${text}`);
    if (op?.t !== 'op') throw new Error(`expected an operator after ${field.v} in ${text} (bare search terms are outside the subset)`);
    if (value?.t !== 'string' && value?.t !== 'word') throw new Error(`expected a value after ${field.v}${op.v} in ${text}`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(field.v)) throw new Error(`unsupported field path ${field.v}`);
    if (value.t === 'word' && value.v === '*' && op.v !== ':') throw new Error(`* only with : in ${text}`);
    return { kind: 'cmp', path: field.v.split('.'), op: op.v as Op, value: value.v, quoted: value.t === 'string' };
  }
  const node = andExpr();
  if (pos !== tokens.length) throw new Error(`unexpected ${tokens[pos].v} in ${text}`);
  return node;
}

/**
 * The value at a dotted path of an entry; undefined when any step is missing.
 *
 * @example
 * fieldValue({ jsonPayload: { deleted: 3 } }, ['jsonPayload', 'deleted']); // 3
 */
export function fieldValue(entry: LogEntry, path: readonly string[]): unknown {
  let v: unknown = entry;
  for (const key of path) {
    if (typeof v !== 'object' || v === null || !Object.prototype.hasOwnProperty.call(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

const NUMBER = /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/;

function compare(actual: unknown, node: Extract<FilterNode, { kind: 'cmp' }>): boolean {
  if (node.op === ':' && node.value === '*' && !node.quoted) return actual !== undefined && actual !== null;
  if (actual === undefined || actual === null) return false;
  // The subset compares scalars only.
  if (typeof actual !== 'string' && typeof actual !== 'number' && typeof actual !== 'boolean') return false;
  const text = String(actual);
  switch (node.op) {
    case ':':
      return text.toLowerCase().includes(node.value.toLowerCase());
    case '=~':
      return new RegExp(node.value).test(text);
    case '!~':
      return !new RegExp(node.value).test(text);
    default:
  }
  let a: number | string = text;
  let b: number | string = node.value;
  if (node.path.length === 1 && node.path[0] === 'severity') {
    a = SEVERITIES.indexOf(text.toUpperCase());
    b = SEVERITIES.indexOf(node.value.toUpperCase());
    if (b < 0) throw new Error(`unknown severity ${node.value}`);
  } else if (NUMBER.test(text) && NUMBER.test(node.value)) {
    a = Number(text);
    b = Number(node.value);
  } else if (!['=', '!='].includes(node.op)) {
    return false; // ordering is for numbers and severities in the subset
  }
  switch (node.op) {
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    default:
      throw new Error('unreachable: every operator is handled above');
  }
}

/**
 * Whether `entry` matches the parsed filter.
 *
 * @example
 * evaluate(parseFilter('httpRequest.status>=500'), { httpRequest: { status: 503 } }); // true
 */
export function evaluate(node: FilterNode, entry: LogEntry): boolean {
  switch (node.kind) {
    case 'and':
      return node.items.every((n) => evaluate(n, entry));
    case 'or':
      return node.items.some((n) => evaluate(n, entry));
    case 'not':
      return !evaluate(node.item, entry);
    case 'cmp':
      return compare(fieldValue(entry, node.path), node);
  }
}

/**
 * Whether `entry` matches the filter text.
 *
 * @example
 * matches('jsonPayload.message:"kill"', entry);
 */
export function matches(filter: string, entry: LogEntry): boolean {
  return evaluate(parseFilter(filter), entry);
}

/**
 * Every field path a filter compares, as dotted text.
 *
 * @example
 * fieldsOf(parseFilter('a.b="x" OR c>1')); // ['a.b', 'c']
 */
export function fieldsOf(node: FilterNode): string[] {
  switch (node.kind) {
    case 'and':
    case 'or':
      return [...new Set(node.items.flatMap(fieldsOf))];
    case 'not':
      return fieldsOf(node.item);
    case 'cmp':
      return [node.path.join('.')];
  }
}

/**
 * A log-based metric's EXTRACT(field) value extractor or label extractor, applied to an entry.
 *
 * @example
 * extract('EXTRACT(jsonPayload.latencyMs)', entry); // 1234
 */
export function extract(extractor: string, entry: LogEntry): unknown {
  const m = /^EXTRACT\(([A-Za-z_][\w.]*)\)$/.exec(extractor);
  if (!m) throw new Error(`only EXTRACT(field) is in the subset: ${extractor}`);
  return fieldValue(entry, m[1].split('.'));
}

/** Where a line was written: the Cloud Run service and the stream. */
export interface LineSource {
  project: string;
  service: string;
}

/**
 * The LogEntry Cloud Run makes of one JSON line a function writes (structured logging): the
 * special fields `severity`, `httpRequest` and `logging.googleapis.com/trace` become the entry's
 * own, everything else (`message` included) is jsonPayload. lib/setup/log.ts writes WARNING and
 * ERROR to stderr and the rest to stdout, which names the log.
 *
 * @example
 * toLogEntry('{"severity":"INFO","message":"kill finished","deleted":2}', { project: 'p', service: 'session-kill' });
 */
export function toLogEntry(line: string | Record<string, unknown>, source: LineSource): LogEntry {
  const record = typeof line === 'string' ? (JSON.parse(line) as Record<string, unknown>) : line;
  const { severity, httpRequest, 'logging.googleapis.com/trace': trace, ...payload } = record;
  const level = typeof severity === 'string' ? severity : 'DEFAULT';
  const stream = level === 'WARNING' || level === 'ERROR' ? 'stderr' : 'stdout';
  return {
    logName: `projects/${source.project}/logs/run.googleapis.com%2F${stream}`,
    resource: {
      type: 'cloud_run_revision',
      labels: { project_id: source.project, service_name: source.service, location: 'europe-west1' },
    },
    severity: level,
    ...(httpRequest === undefined ? {} : { httpRequest }),
    ...(trace === undefined ? {} : { trace }),
    jsonPayload: payload,
  };
}
