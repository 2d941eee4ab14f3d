import { readFileSync } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import { join } from 'node:path';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Response as SupertestResponse } from 'supertest';
import { parse } from 'yaml';

/**
 * Checks real answers against the OpenAPI documents (docs/openapi.yaml for sessionApi,
 * docs/openapi-cleanup.yaml for startClearSessions): the status is documented for the operation,
 * the content type is one of its media types, the JSON body matches the schema (ajv, JSON Schema
 * 2020-12 as OpenAPI 3.1 uses it), required headers are there and every documented header
 * matches its schema. The API's own headers (cookies, keys, CORS, Allow, Retry-After…) may only
 * appear where the document lists them, so "an error never carries Set-Cookie" is checked too.
 *
 * watchServer() records every answer a server sends; test/support/api.ts hooks it into the
 * harness, so every API test validates each answer it gets.
 */

export const SESSION_API_DOCUMENT = join(__dirname, '..', '..', 'docs', 'openapi.yaml');
export const CLEANUP_DOCUMENT = join(__dirname, '..', '..', 'docs', 'openapi-cleanup.yaml');

/** One answer as it went over the wire. Header names are lower case, as Node keeps them. */
export interface Answer {
  method: string;
  /** The request target: path and query. */
  url: string;
  status: number;
  headers: OutgoingHttpHeaders;
  body: string;
}

type Json = Record<string, unknown>;

/** Headers only the API sets: a response may carry them only where the document lists them. */
const API_HEADERS = new Set([
  'set-cookie',
  'x-security-key',
  'sec-x-viur-staticskey',
  'allow',
  'retry-after',
  'www-authenticate',
  'cache-control',
  'vary',
]);
const isApiHeader = (name: string) => API_HEADERS.has(name) || name.startsWith('access-control-');

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** A JSON pointer as a URI fragment, the form ajv resolves `$ref`s in. */
function fragment(pointer: string[]): string {
  return pointer.map((p) => '/' + encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))).join('');
}

/** The path of a request target, without query and trailing slashes. */
function pathOf(url: string): string {
  return url.split('?')[0].replace(/(.)\/+$/, '$1');
}

/** One OpenAPI document, loaded once, with its schemas compiled on first use. */
export class OpenApiDocument {
  readonly doc: Json;
  readonly file: string;
  private readonly id: string;
  private readonly ajv: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly templates: { template: string; pattern: RegExp }[];

  /**
   * @param file the YAML document
   * @param options.anyPath the function does not look at the path (startClearSessions): every
   *   path is the document's only one
   */
  constructor(
    file: string,
    private readonly options: { anyPath?: boolean } = {},
  ) {
    this.file = file;
    this.doc = parse(readFileSync(file, 'utf8')) as Json;
    this.id = 'urn:openapi:document';
    // Strict: a keyword ajv does not know (a typo, an OpenAPI 3.0 `nullable`) fails the compile.
    this.ajv = new Ajv2020({ strict: true, allErrors: true });
    addFormats(this.ajv);
    // Paths and components are registered as one schema, so that `#/components/schemas/…`
    // resolves where it stands; its two keywords mean nothing to ajv, only the schemas in them
    // are compiled, each on first use.
    this.ajv.addKeyword('paths');
    this.ajv.addKeyword('components');
    this.ajv.addSchema({ $id: this.id, paths: this.doc.paths, components: this.doc.components });
    this.templates = Object.keys(this.paths).map((template) => ({
      template,
      pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}$`),
    }));
  }

  get paths(): Record<string, Json> {
    return this.doc.paths as Record<string, Json>;
  }

  /** The methods a path item documents besides OPTIONS, upper case: what `Allow` must list. */
  methodsOf(template: string): string[] {
    const item = this.paths[template];
    return METHODS.filter((m) => m !== 'options' && item[m] !== undefined).map((m) => m.toUpperCase());
  }

  /** The object at a JSON pointer, following `$ref`s (local ones only) to the end. */
  resolve(pointer: string[]): { value: Json; pointer: string[] } {
    let value: unknown = this.doc;
    for (const part of pointer) value = (value as Json)[part];
    const ref = (value as Json | undefined)?.$ref;
    if (typeof ref === 'string') {
      if (!ref.startsWith('#/')) throw new Error(`${this.file}: only local $refs are supported, not ${ref}`);
      return this.resolve(
        ref
          .slice(2)
          .split('/')
          .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')),
      );
    }
    if (value === undefined) throw new Error(`${this.file}: nothing at #/${pointer.join('/')}`);
    return { value: value as Json, pointer };
  }

  /** The compiled schema at a JSON pointer of the document. */
  schemaAt(pointer: string[]): ValidateFunction {
    const ref = `${this.id}#${fragment(pointer)}`;
    let validate = this.compiled.get(ref);
    if (!validate) {
      validate = this.ajv.compile({ $ref: ref });
      this.compiled.set(ref, validate);
    }
    return validate;
  }

  /** The path template a request path falls under, or undefined. A trailing slash is ignored, as the API does. */
  templateOf(url: string): string | undefined {
    if (this.options.anyPath) return Object.keys(this.paths)[0];
    const path = pathOf(url);
    return this.templates.find((t) => t.pattern.test(path))?.template;
  }

  /** Paths functions-framework answers itself (`x-framework-paths`), before the function sees them. */
  private frameworkPath(url: string): boolean {
    const paths = (this.doc['x-framework-paths'] as { paths?: string[] } | undefined)?.paths ?? [];
    return paths.includes(pathOf(url));
  }

  /**
   * Everything in which an answer departs from the document; empty when it conforms.
   *
   * @example
   * doc.problems({ method: 'GET', url: '/healthz', status: 200, headers, body: '{"status":"ok"}\n' }); // []
   */
  problems(answer: Answer): string[] {
    const what = `${answer.method} ${answer.url} → ${answer.status}`;
    const framework = this.frameworkPath(answer.url);
    const template = framework ? undefined : this.templateOf(answer.url);
    const method = answer.method.toLowerCase();
    let responses: string[];
    let where: string;
    if (framework) {
      responses = ['x-framework-paths', 'responses'];
      where = 'a path functions-framework answers';
    } else if (template === undefined) {
      responses = ['x-unknown-path', 'responses'];
      where = 'an unknown path';
    } else {
      const item = this.paths[template];
      const op = item[method] !== undefined ? method : method === 'head' && item.get !== undefined ? 'get' : undefined;
      if (op === undefined) {
        responses = ['x-other-method', 'responses'];
        where = `another method on ${template}`;
      } else {
        responses = ['paths', template, op, 'responses'];
        where = `${op.toUpperCase()} ${template}`;
      }
    }
    const table = this.resolve(responses).value;
    const status = String(answer.status);
    const key = [status, `${status[0]}XX`, 'default'].find((k) => table[k] !== undefined);
    if (key === undefined) return [`${what}: status ${status} is not documented for ${where} (${this.file})`];
    const { value: response, pointer } = this.resolve([...responses, key]);
    const problems: string[] = [];
    const fail = (message: string) => problems.push(`${what}: ${message} (${where}, ${status} in ${this.file})`);

    // Headers: required ones present, documented ones valid, the API's own ones documented.
    const documented = new Map<string, string>();
    for (const name of Object.keys((response.headers as Json | undefined) ?? {})) {
      const lower = name.toLowerCase();
      if (lower === 'content-type') continue;
      documented.set(lower, name);
      const { value: header, pointer: headerPointer } = this.resolve([...pointer, 'headers', name]);
      const sent = answer.headers[lower];
      if (sent === undefined) {
        if (header.required === true) fail(`the required header ${name} is missing`);
        continue;
      }
      const validate = this.schemaAt([...headerPointer, 'schema']);
      for (const value of Array.isArray(sent) ? sent : [String(sent)]) {
        if (!validate(value)) fail(`header ${name}: ${JSON.stringify(value)} ${this.ajv.errorsText(validate.errors)}`);
      }
    }
    for (const name of Object.keys(answer.headers)) {
      if (isApiHeader(name) && !documented.has(name)) fail(`the header ${name} is not documented here`);
    }
    // The methods a known path answers to are the documented ones.
    if (template !== undefined) {
      const expected = this.methodsOf(template).sort().join(', ');
      for (const name of ['allow', 'access-control-allow-methods']) {
        const sent = answer.headers[name];
        const listed = sent === undefined ? undefined : String(sent).split(/,\s*/).sort().join(', ');
        if (listed !== undefined && listed !== expected) fail(`${name}: ${String(sent)}, but the document has ${expected}`);
      }
    }

    // The body: no body where no content is documented; else one of the media types and its schema.
    const noBody = answer.method === 'HEAD';
    const content = response.content as Json | undefined;
    if (content === undefined) {
      if (answer.body !== '') fail(`a body where none is documented: ${answer.body.slice(0, 200)}`);
      return problems;
    }
    const type = String(answer.headers['content-type'] ?? '');
    const essence = type.split(';')[0].trim().toLowerCase();
    const media = Object.keys(content).find((m) => m.toLowerCase() === essence);
    if (media === undefined) {
      fail(`Content-Type ${JSON.stringify(type)} is not one of ${Object.keys(content).join(', ')}`);
      return problems;
    }
    if (noBody) return problems;
    let body: unknown;
    try {
      body = JSON.parse(answer.body);
    } catch {
      fail(`the body is not JSON: ${answer.body.slice(0, 200)}`);
      return problems;
    }
    const validate = this.schemaAt([...pointer, 'content', media, 'schema']);
    if (!validate(body)) fail(`body ${JSON.stringify(body).slice(0, 300)}: ${this.ajv.errorsText(validate.errors)}`);
    return problems;
  }

  /**
   * Throws when the answer departs from the document; for a supertest answer in a test.
   *
   * @example
   * sessionApiDocument().assert(answerOf(await request(server).get('/healthz')));
   */
  assert(answer: Answer): void {
    const problems = this.problems(answer);
    if (problems.length > 0) throw new Error(`The answer does not match the OpenAPI document:\n${problems.join('\n')}`);
  }
}

let sessionApiDoc: OpenApiDocument | undefined;
let cleanupDoc: OpenApiDocument | undefined;

/** docs/openapi.yaml, loaded once per test file. */
export function sessionApiDocument(): OpenApiDocument {
  return (sessionApiDoc ??= new OpenApiDocument(SESSION_API_DOCUMENT));
}

/** docs/openapi-cleanup.yaml, loaded once per test file. */
export function cleanupDocument(): OpenApiDocument {
  return (cleanupDoc ??= new OpenApiDocument(CLEANUP_DOCUMENT, { anyPath: true }));
}

/**
 * A supertest answer as an Answer.
 *
 * @example
 * sessionApiDocument().assert(answerOf(await request(server).get('/session')));
 */
export function answerOf(res: SupertestResponse): Answer {
  const req = (res as unknown as { req: { method: string; path: string } }).req;
  return { method: req.method, url: req.path, status: res.status, headers: res.headers, body: res.text ?? '' };
}

/** What watchServer() has seen: answers validated, and the problems not yet reported. */
export interface Watch {
  validated: number;
  problems: string[];
  /** Returns and forgets the problems seen so far. */
  take(): string[];
}

/**
 * Records every answer `server` sends, as sent (status, headers, body bytes), and validates it
 * against `doc` when it is finished. An answer cut off mid-way (the connection destroyed) is
 * skipped: there is nothing whole to check.
 *
 * @example
 * const watch = watchServer(getTestServer('sessionApi'), sessionApiDocument());
 * afterEach(() => expect(watch.take()).toEqual([]));
 */
export function watchServer(server: Server, doc: OpenApiDocument): Watch {
  const watch: Watch = {
    validated: 0,
    problems: [],
    take() {
      return this.problems.splice(0);
    },
  };
  // First in line, before the framework's own listener can write anything.
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const chunks: Buffer[] = [];
    const keep = (chunk: unknown, encoding?: unknown) => {
      if (typeof chunk === 'string') chunks.push(Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8'));
      else if (chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
    };
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    res.write = ((...args: unknown[]) => {
      keep(args[0], args[1]);
      return write(...args);
    }) as ServerResponse['write'];
    res.end = ((...args: unknown[]) => {
      if (typeof args[0] !== 'function') keep(args[0], args[1]);
      return end(...args);
    }) as ServerResponse['end'];
    res.on('finish', () => {
      const answer: Answer = {
        method,
        url,
        status: res.statusCode,
        headers: res.getHeaders(),
        body: Buffer.concat(chunks).toString('utf8'),
      };
      watch.validated++;
      try {
        watch.problems.push(...doc.problems(answer));
      } catch (err) {
        watch.problems.push(`${method} ${url}: the validator failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
  });
  return watch;
}
