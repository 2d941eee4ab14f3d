/**
 * Checks parsed HCL (the JSON shape of @cdktf/hcl2json: blocks are arrays of objects, attributes are
 * values, expressions are "${...}" strings) against the provider schema extract that
 * scripts/terraform-schema.js writes to terraform/schema/provider-schemas.json: what
 * `terraform validate` would find about names, required arguments, blocks vs arguments, block
 * counts, enum values and references, without the providers. Meta-argument blocks (lifecycle,
 * provisioner, connection) are not provider schema and are left alone.
 */

export interface AttributeSchema {
  required: boolean;
  enum?: string[];
}

export interface NestedBlockSchema {
  nesting: 'single' | 'list';
  required: boolean;
  block: BlockSchema;
}

export interface BlockSchema {
  attributes: Record<string, AttributeSchema>;
  blocks: Record<string, NestedBlockSchema>;
  /** Read-only attributes (names as the extract spells them; compared without underscores). */
  computed?: string[];
}

export interface ProviderExtract {
  source: string;
  version: string;
  from: string;
  resource_schemas: Record<string, BlockSchema>;
  data_source_schemas: Record<string, BlockSchema>;
}

export interface SchemaExtract {
  providers: Record<string, ProviderExtract>;
}

type Json = Record<string, unknown>;

/** The source address of Terraform's own provider (terraform_data), which versions.tf does not pin. */
export const BUILT_IN_PROVIDER = 'terraform.io/builtin/terraform';

const META_ARGUMENTS = ['count', 'for_each', 'depends_on', 'provider'];
const META_BLOCKS = { resource: ['lifecycle', 'provisioner', 'connection'], data: ['lifecycle'] };

export type Kind = 'resource' | 'data';

export interface Declared {
  kind: Kind;
  type: string;
  name: string;
  file: string;
  body: Json;
}

/** Every resource and data block of the parsed files. */
export function declarations(files: { file: string; hcl: Json }[]): Declared[] {
  const out: Declared[] = [];
  for (const { file, hcl } of files) {
    for (const kind of ['resource', 'data'] as const) {
      for (const [type, byName] of Object.entries((hcl[kind] ?? {}) as Record<string, Record<string, Json[]>>)) {
        for (const [name, bodies] of Object.entries(byName)) for (const body of bodies) out.push({ kind, type, name, file, body });
      }
    }
  }
  return out;
}

/** The provider a block belongs to: its `provider` meta-argument, else the prefix of its type. */
export function providerOf(type: string, body: Json): string {
  const explicit = typeof body.provider === 'string' ? /^\$\{([\w-]+)(\.\w+)?\}$/.exec(body.provider) : null;
  return explicit ? explicit[1] : type.split('_')[0];
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isBlockList = (v: unknown): v is Json[] => Array.isArray(v) && v.length > 0 && v.every(isObject);

function schemaFor(d: Declared, extract: SchemaExtract): BlockSchema | string {
  const provider = providerOf(d.type, d.body);
  const p = extract.providers[provider];
  if (!p) return `no schema of provider "${provider}" in the extract`;
  const schema = (d.kind === 'resource' ? p.resource_schemas : p.data_source_schemas)[d.type];
  if (!schema) return `${provider} ${p.version} has no ${d.kind === 'resource' ? 'resource' : 'data source'} type ${d.type}`;
  return schema;
}

function checkBlock(where: string, body: Json, schema: BlockSchema, meta: Kind | undefined, problems: string[]): void {
  const dynamic = isObject(body.dynamic) ? body.dynamic : {};
  for (const [key, value] of Object.entries(body)) {
    if (meta && META_ARGUMENTS.includes(key)) continue;
    if (meta && META_BLOCKS[meta].includes(key)) continue;
    if (key === 'dynamic') {
      for (const [label, uses] of Object.entries(dynamic)) {
        const nested = schema.blocks[label];
        if (!nested) {
          problems.push(`${where}: dynamic "${label}": no block "${label}" here`);
          continue;
        }
        for (const use of uses as Json[]) {
          const content = (use.content as Json[] | undefined)?.[0];
          if (!content) problems.push(`${where}: dynamic "${label}" has no content block`);
          else checkBlock(`${where}.${label}`, content, nested.block, undefined, problems);
        }
      }
      continue;
    }
    const attribute = schema.attributes[key];
    if (attribute) {
      if (isBlockList(value)) problems.push(`${where}: "${key}" is an argument, written as a block (use ${key} = ...)`);
      else if (attribute.enum && typeof value === 'string' && !value.includes('${') && !attribute.enum.includes(value)) {
        problems.push(`${where}: ${key} = "${value}" is not one of ${attribute.enum.join(', ')}`);
      }
      continue;
    }
    const nested = schema.blocks[key];
    if (nested) {
      if (!isBlockList(value)) {
        problems.push(`${where}: "${key}" is a block, written as an argument (use ${key} { ... })`);
        continue;
      }
      if (nested.nesting === 'single' && value.length > 1)
        problems.push(`${where}: at most one "${key}" block is allowed, found ${value.length}`);
      value.forEach((b) => checkBlock(`${where}.${key}`, b, nested.block, undefined, problems));
      continue;
    }
    problems.push(`${where}: no argument or block named "${key}"`);
  }
  for (const [name, attribute] of Object.entries(schema.attributes)) {
    if (attribute.required && !(name in body)) problems.push(`${where}: the argument "${name}" is required`);
  }
  for (const [name, nested] of Object.entries(schema.blocks)) {
    if (nested.required && !(name in body) && !(name in dynamic)) problems.push(`${where}: a "${name}" block is required`);
  }
}

/** Every string inside a value, at any depth. */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (isObject(value)) return Object.values(value).flatMap(strings);
  return [];
}

const squash = (name: string) => name.replace(/_/g, '');

/** Checks `type.name.attr...` and `data.type.name.attr...` references against the schema. */
function checkReferences(where: string, body: Json, declared: Declared[], extract: SchemaExtract, problems: string[]): void {
  const ref = /(?<![\w.-])(data\.)?([a-z][a-z0-9]*_[a-z0-9_]+)\.([A-Za-z_][\w-]*)((?:\[[^\]]*\])?(?:\.[A-Za-z_]\w*(?:\[[^\]]*\])?)*)/g;
  for (const text of strings(body)) {
    for (const expr of text.matchAll(/\$\{([^}]*)\}/g)) {
      for (const m of expr[1].matchAll(ref)) {
        const kind: Kind = m[1] ? 'data' : 'resource';
        const [type, name] = [m[2], m[3]];
        if (['var', 'local', 'path', 'each', 'count', 'self', 'module', 'terraform'].includes(type)) continue;
        const target = declared.find((d) => d.kind === kind && d.type === type && d.name === name);
        const label = `${kind === 'data' ? 'data.' : ''}${type}.${name}`;
        if (!target) {
          // A type-looking word that is no declared block: a function argument or a map key.
          if (declared.some((d) => d.type === type) || m[1]) problems.push(`${where}: refers to ${label}, which is not declared`);
          continue;
        }
        let schema = schemaFor(target, extract);
        if (typeof schema === 'string') continue; // reported where the target is declared
        const steps = m[4]
          .replace(/\[[^\]]*\]/g, '')
          .split('.')
          .filter(Boolean);
        for (const step of steps) {
          if (step in schema.attributes || (schema.computed ?? []).some((c) => squash(c) === squash(step))) break;
          const nested: NestedBlockSchema | undefined = schema.blocks[step];
          if (!nested) {
            problems.push(`${where}: ${label} has no attribute "${step}"`);
            break;
          }
          schema = nested.block;
        }
      }
    }
  }
}

/**
 * All problems of the parsed files against the extract; empty when the configuration matches the
 * schema. References are checked in every block of the files (resources, data, locals, outputs).
 */
export function checkAgainstSchema(files: { file: string; hcl: Json }[], extract: SchemaExtract): string[] {
  const problems: string[] = [];
  const declared = declarations(files);
  for (const d of declared) {
    const where = `${d.file}: ${d.kind === 'data' ? 'data.' : ''}${d.type}.${d.name}`;
    const schema = schemaFor(d, extract);
    if (typeof schema === 'string') {
      problems.push(`${where}: ${schema}`);
      continue;
    }
    checkBlock(where, d.body, schema, d.kind, problems);
  }
  for (const d of declared)
    checkReferences(`${d.file}: ${d.kind === 'data' ? 'data.' : ''}${d.type}.${d.name}`, d.body, declared, extract, problems);
  for (const { file, hcl } of files) {
    for (const section of ['locals', 'output']) {
      if (hcl[section] !== undefined) checkReferences(`${file}: ${section}`, { [section]: hcl[section] }, declared, extract, problems);
    }
    for (const d of declared.filter((x) => x.file === file)) {
      for (const dep of (d.body.depends_on ?? []) as string[]) {
        const m = /^\$\{(data\.)?([\w-]+)\.([\w-]+)\}$/.exec(dep);
        const found = m && declared.some((x) => x.kind === (m[1] ? 'data' : 'resource') && x.type === m[2] && x.name === m[3]);
        if (!found) problems.push(`${file}: ${d.type}.${d.name}: depends_on ${dep} names nothing declared`);
      }
    }
  }
  return [...new Set(problems)];
}
