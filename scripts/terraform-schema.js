#!/usr/bin/env node
/**
 * Writes terraform/schema/provider-schemas.json: the schema of every resource and data source type
 * terraform/ uses, taken from a pinned, public source of each provider's schema, so that
 * test/terraform/terraform.test.ts can check the HCL offline (the providers themselves cannot be downloaded
 * where the tests run, so `terraform validate` cannot).
 *
 * The source: the prebuilt CDK for Terraform packages on the npm registry. Each embeds the schema of
 * one provider release in its jsii assembly (`.jsii`): per type a config interface whose properties
 * are the arguments and blocks, with `optional` for what is not required, the Terraform name in
 * the registry link of each property's docs, "Possible values: [...]" where the provider validates
 * an enum, and the computed attributes as getters of the resource class. The packages are
 * downloaded with `npm pack` into a temporary directory; they are not dependencies of the project.
 *
 * Terraform's own types (terraform_data) come from the Terraform CLI on PATH: `terraform providers
 * schema -json` in a scratch directory that uses nothing else, which needs no download.
 *
 * Run it after changing which types terraform/ uses or a provider pin:
 *   node scripts/terraform-schema.js   (npm run terraform:schema)
 * It needs the npm registry, `tar`, `terraform`, and node_modules (for @cdktf/hcl2json).
 */
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parse } = require('@cdktf/hcl2json');

const root = path.resolve(__dirname, '..');
const tfDir = path.join(root, 'terraform');
const outFile = path.join(tfDir, 'schema', 'provider-schemas.json');

/**
 * Provider local name (as in versions.tf) -> the package that embeds its schema. The provider
 * version is read from the package (`cdktf.provider`) and written to the extract, where the test
 * compares it with the pin in versions.tf.
 */
const SOURCES = {
  google: '@cdktf/provider-google@16.12.1',
  'google-beta': '@cdktf/provider-google-beta@16.12.1',
  archive: '@cdktf/provider-archive@11.0.1',
  external: '@cdktf/provider-external@11.0.1',
  random: '@cdktf/provider-random@11.0.1',
  time: '@cdktf/provider-time@11.0.1',
};

/** Terraform's own provider: its schema comes from the Terraform CLI, not from a package. */
const BUILT_IN = 'terraform';

function fail(message) {
  process.stderr.write(`terraform-schema: ${message}\n`);
  process.exit(1);
}

/** Which provider a block belongs to: its `provider` meta-argument, else the type's prefix. */
function providerOf(type, body) {
  const explicit = typeof body.provider === 'string' ? /^\$\{([\w-]+)(\.\w+)?\}$/.exec(body.provider) : null;
  return explicit ? explicit[1] : type.split('_')[0];
}

/** Types used in terraform/, by provider: { google: { resource: Set, data: Set }, ... }. */
async function usedTypes() {
  const used = {};
  for (const file of fs
    .readdirSync(tfDir)
    .filter((f) => f.endsWith('.tf'))
    .sort()) {
    const hcl = await parse(file, fs.readFileSync(path.join(tfDir, file), 'utf8'));
    for (const kind of ['resource', 'data']) {
      for (const [type, byName] of Object.entries(hcl[kind] || {})) {
        for (const bodies of Object.values(byName)) {
          for (const body of bodies) {
            const provider = providerOf(type, body);
            if (!SOURCES[provider] && provider !== BUILT_IN)
              fail(`${kind} ${type} uses provider "${provider}", which has no schema source here; add one to SOURCES`);
            used[provider] = used[provider] || { resource: new Set(), data: new Set() };
            used[provider][kind].add(type);
          }
        }
      }
    }
  }
  return used;
}

/** Downloads a package and returns its jsii assembly and package.json. */
function download(spec, tmp) {
  const dir = fs.mkdtempSync(path.join(tmp, 'pkg-'));
  const packed = JSON.parse(
    execFileSync('npm', ['pack', spec, '--json', '--silent', '--pack-destination', dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }),
  );
  const tarball = path.join(dir, packed[0].filename);
  execFileSync('tar', ['-xzf', tarball, '-C', dir, 'package/.jsii', 'package/package.json']);
  const assembly = JSON.parse(fs.readFileSync(path.join(dir, 'package', '.jsii'), 'utf8'));
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package', 'package.json'), 'utf8'));
  fs.rmSync(dir, { recursive: true, force: true });
  return { assembly, pkg };
}

const snake = (camel) => camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();

/** The Terraform name of a property: the anchor of its registry link, which keeps the real spelling. */
function terraformName(prop) {
  const text = `${prop.docs?.summary ?? ''} ${prop.docs?.remarks ?? ''}`;
  const m = /\/docs\/(?:resources|data-sources)\/[\w-]+#([\w-]+) /.exec(text);
  return m ? m[1] : snake(prop.name);
}

function enumValues(prop) {
  const text = `${prop.docs?.summary ?? ''} ${prop.docs?.remarks ?? ''}`;
  const m = /Possible values: \[([^\]]*)\]/.exec(text);
  if (!m) return undefined;
  return [...m[1].matchAll(/"([^"]*)"/g)].map((v) => v[1]);
}

/** The datatype interface a property's type refers to, and whether it is a list of them. */
function nestedType(type, types) {
  if (type.fqn && types[type.fqn]?.datatype) return { fqn: type.fqn, list: false };
  if (type.collection && type.collection.kind === 'array') {
    const inner = nestedType(type.collection.elementtype, types);
    return inner ? { fqn: inner.fqn, list: true } : undefined;
  }
  for (const t of type.union?.types ?? []) {
    const inner = nestedType(t, types);
    if (inner) return inner;
  }
  return undefined;
}

/** Computed attributes: getters of an OutputReference or resource class that are not settable. */
function computedNames(cls, settable) {
  if (!cls) return [];
  const names = [];
  for (const p of cls.properties ?? []) {
    if (p.static || p.protected || p.name === 'internalValue' || p.name.endsWith('Input')) continue;
    const name = snake(p.name);
    if (!settable.has(name)) names.push(name);
  }
  return [...new Set(names)].sort();
}

/** The OutputReference (or List) class that reads back a datatype interface. */
function outputClassOf(fqn, types) {
  const ref = types[`${fqn}OutputReference`];
  return ref && ref.kind === 'class' ? ref : undefined;
}

function blockSchema(fqn, types, outputClass, depth = 0) {
  if (depth > 20) fail(`${fqn}: nests deeper than 20 levels`);
  const iface = types[fqn];
  const attributes = {};
  const blocks = {};
  for (const prop of iface.properties ?? []) {
    const name = terraformName(prop);
    const nested = nestedType(prop.type, types);
    const isBlock = nested && /\bblock\.\s*$/.test(prop.docs?.summary ?? '');
    if (isBlock) {
      blocks[name] = {
        nesting: nested.list ? 'list' : 'single',
        required: !prop.optional,
        block: blockSchema(nested.fqn, types, outputClassOf(nested.fqn, types), depth + 1),
      };
    } else {
      const attr = { required: !prop.optional };
      const values = enumValues(prop);
      if (values && values.length > 0) attr.enum = values;
      attributes[name] = attr;
    }
  }
  const out = { attributes: sortKeys(attributes), blocks: sortKeys(blocks) };
  const computed = computedNames(outputClass, new Set([...Object.keys(attributes), ...Object.keys(blocks)]));
  if (computed.length > 0) out.computed = computed;
  return out;
}

function sortKeys(obj) {
  return Object.fromEntries(
    Object.keys(obj)
      .sort()
      .map((k) => [k, obj[k]]),
  );
}

/** `terraform providers schema -json` block -> the extract's block shape. */
function fromProviderSchema(block) {
  const attributes = {};
  const computed = [];
  for (const [name, a] of Object.entries(block.attributes ?? {})) {
    if (a.computed && !a.optional && !a.required) computed.push(name);
    else attributes[name] = { required: a.required === true };
  }
  const blocks = {};
  for (const [name, b] of Object.entries(block.block_types ?? {})) {
    const single = b.nesting_mode === 'single' || b.nesting_mode === 'group' || b.max_items === 1;
    blocks[name] = { nesting: single ? 'single' : 'list', required: (b.min_items ?? 0) > 0, block: fromProviderSchema(b.block) };
  }
  const out = { attributes: sortKeys(attributes), blocks: sortKeys(blocks) };
  if (computed.length > 0) out.computed = computed.sort();
  return out;
}

/** Terraform's built-in types, from the CLI itself (no download: nothing but the built-in provider is used). */
function builtInSchemas(used, tmp) {
  const dir = fs.mkdtempSync(path.join(tmp, 'builtin-'));
  const declare =
    [...used.resource].map((t) => `resource "${t}" "x" {}\n`).join('') + [...used.data].map((t) => `data "${t}" "x" {}\n`).join('');
  fs.writeFileSync(path.join(dir, 'main.tf'), declare);
  const env = { ...process.env, TF_IN_AUTOMATION: '1', CHECKPOINT_DISABLE: '1' };
  execFileSync('terraform', ['init', '-input=false', '-backend=false'], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const schema = JSON.parse(
    execFileSync('terraform', ['providers', 'schema', '-json'], { cwd: dir, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }),
  );
  const version = JSON.parse(execFileSync('terraform', ['version', '-json'], { cwd: dir, env, encoding: 'utf8' })).terraform_version;
  const p = schema.provider_schemas['terraform.io/builtin/terraform'];
  const entry = {
    source: 'terraform.io/builtin/terraform',
    version,
    from: `terraform ${version} providers schema -json`,
    resource_schemas: {},
    data_source_schemas: {},
  };
  for (const [kind, key] of [
    ['resource', 'resource_schemas'],
    ['data', 'data_source_schemas'],
  ]) {
    for (const type of [...used[kind]].sort()) {
      const s = p?.[key]?.[type];
      if (!s) fail(`terraform ${version} has no built-in ${kind} type ${type}`);
      entry[key][type] = fromProviderSchema(s.block);
    }
  }
  return entry;
}

/** Every resource and data source class of an assembly, by Terraform type name. */
function typeIndex(assembly) {
  const index = { resource: {}, data: {} };
  for (const t of Object.values(assembly.types)) {
    if (t.kind !== 'class') continue;
    const kind = t.base === 'cdktf.TerraformResource' ? 'resource' : t.base === 'cdktf.TerraformDataSource' ? 'data' : undefined;
    if (!kind) continue;
    const m = /\/docs\/(?:resources|data-sources)\/[\w-]+ ([\w-]+)\}/.exec(t.docs?.summary ?? '');
    if (m) index[kind][m[1]] = t;
  }
  return index;
}

function schemaOf(cls, types) {
  const config = cls.initializer?.parameters?.find((p) => p.name === 'config');
  if (!config?.type?.fqn || !types[config.type.fqn]) fail(`${cls.fqn}: no config interface`);
  return blockSchema(config.type.fqn, types, cls);
}

async function main() {
  const used = await usedTypes();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'terraform-schema-'));
  const extract = {
    comment: 'Generated by scripts/terraform-schema.js from the sources named below (`from`); do not edit by hand.',
    providers: {},
  };
  try {
    for (const provider of Object.keys(used).sort()) {
      if (provider === BUILT_IN) {
        extract.providers[provider] = builtInSchemas(used[provider], tmp);
        continue;
      }
      const spec = SOURCES[provider];
      process.stderr.write(`terraform-schema: ${spec} ...\n`);
      const { assembly, pkg } = download(spec, tmp);
      const embedded = pkg.cdktf?.provider;
      if (!embedded?.version) fail(`${spec} does not say which provider release it embeds`);
      const index = typeIndex(assembly);
      const entry = {
        source: embedded.name,
        version: embedded.version,
        from: `npm:${spec}`,
        resource_schemas: {},
        data_source_schemas: {},
      };
      for (const [kind, key] of [
        ['resource', 'resource_schemas'],
        ['data', 'data_source_schemas'],
      ]) {
        for (const type of [...used[provider][kind]].sort()) {
          const cls = index[kind][type];
          if (!cls) fail(`${provider} ${embedded.version} (${spec}) has no ${kind} type ${type}`);
          entry[key][type] = schemaOf(cls, assembly.types);
        }
      }
      extract.providers[provider] = entry;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, `${JSON.stringify(extract, null, 1)}\n`);
  process.stderr.write(`terraform-schema: wrote ${path.relative(root, outFile)}\n`);
}

main().catch((err) => fail(err.stack || String(err)));
