/**
 * `npm run bench:profile`: where each stack's CPU goes per request. Starts the request benchmark's
 * stacks (ours under functions-framework, express-session in plain Express and under
 * functions-framework, optionally another build of ours) on one emulator, warms each up with a
 * discarded load run, then samples V8's profiler over one read-mostly load run only (through the
 * preload's `/__profile/*` routes) and reports self time per request by component: our code, the
 * framework, Express, the Datastore client, gax, grpc-js, protobufjs, Node itself, GC.
 *
 *   npm run bench:profile -- [--requests=3000] [--clients=16] [--alt-source=DIR/functions/index.js]
 *                            [--read-cache-ms=1000] [--datastore-host=H] [--keep=DIR]
 *                            [--server-node=24|22|current]
 *
 * Every server runs on --server-node (default the deployed runtime, Terraform's nodejs_runtime:
 * Node 24); the version each reported is printed with the table.
 *
 * Profiling slows every stack alike (sampling every 200 µs); the shares, not the absolute times,
 * are what it is for. The .cpuprofile files are kept with --keep (open them in Chrome DevTools).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Emulator, freePort, startEmulator } from '../scripts/emulators';
import type { LoadResult, LoadSpec } from './loadgen';
import { BENCH_JS, FUNCTIONS_FRAMEWORK, FUNCTIONS_SOURCE, lastJson, runNode, type ServerProcess, startServer } from './proc';
import { resolveServerNode } from './serverNode';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const EXPRESS_FAMILY = new Set([
  'express',
  'body-parser',
  'router',
  'raw-body',
  'on-finished',
  'finalhandler',
  'send',
  'qs',
  'type-is',
  'iconv-lite',
  'debug',
  'ms',
  'content-type',
  'cookie',
  'cookie-signature',
  'depd',
  'http-errors',
  'mime-types',
  'mime-db',
  'media-typer',
  'accepts',
  'negotiator',
  'parseurl',
  'path-to-regexp',
  'statuses',
  'vary',
  'proxy-addr',
  'forwarded',
  'ipaddr.js',
  'fresh',
  'etag',
  'range-parser',
  'merge-descriptors',
  'encodeurl',
  'escape-html',
  'utils-merge',
  'methods',
  'array-flatten',
  'safe-buffer',
  'setprototypeof',
  'inherits',
  'unpipe',
  'ee-first',
  'toidentifier',
  'bytes',
  'call-bound',
  'side-channel',
  'get-intrinsic',
  'express-session',
  'on-headers',
  'uid-safe',
  'random-bytes',
  'crc',
]);

/** The component a profile node's code belongs to. */
export function componentOf(frame: { functionName: string; url: string }): string {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(program)') return 'V8 / native (unattributed)';
    return 'native';
  }
  // The profiler's own Profiler.stop (its serialisation runs inside the profiled window): the harness's.
  if (url === 'node:inspector') return 'bench preload';
  if (url.startsWith('node:')) return 'Node.js core';
  const at = url.lastIndexOf('/node_modules/');
  if (at >= 0) {
    const rest = url.slice(at + '/node_modules/'.length).split('/');
    const pkg = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
    if (EXPRESS_FAMILY.has(pkg)) return pkg === 'express-session' ? 'express-session' : 'Express and its dependencies';
    if (pkg === 'protobufjs' || pkg.startsWith('@protobufjs/')) return 'protobufjs';
    return pkg;
  }
  if (url.includes('/dist-bench/')) return 'bench preload';
  if (url.includes('/dist/')) return 'ours (dist/)';
  return 'other';
}

/** Self time in ms per component (idle excluded). */
export function selfTimeByComponent(profile: CpuProfile): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, componentOf(n.callFrame)]));
  const totals = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const c = byId.get(profile.samples[i]!) ?? 'other';
    if (c === '(idle)') continue;
    totals.set(c, (totals.get(c) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  return totals;
}

/**
 * Self time in ms of the heaviest functions of one component ("Node.js core": where functions-framework's
 * AsyncLocalStorage, the HTTP server and the streams spend it), by name and file.
 */
export function topFunctions(profile: CpuProfile, component: string, n: number): Array<{ fn: string; ms: number }> {
  const byId = new Map(profile.nodes.map((x) => [x.id, x.callFrame]));
  const totals = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const frame = byId.get(profile.samples[i]!);
    if (!frame || componentOf(frame) !== component) continue;
    const key = `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^node:/, '')}`;
    totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, ms]) => ({ fn, ms }));
}

/**
 * Self time of Node.js core, by the package whose code is the nearest caller on the stack outside
 * Node core (e.g. "@google-cloud/functions-framework": its middleware's AsyncLocalStorage.run and
 * domain; "(no caller)": ticks and callbacks entered from the event loop, promise hooks included).
 */
export function nodeCoreByCaller(profile: CpuProfile): Map<string, number> {
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const caller = new Map<number, string>();
  const callerOf = (id: number): string => {
    const known = caller.get(id);
    if (known !== undefined) return known;
    let at = parent.get(id);
    let found = '(no caller)';
    while (at !== undefined) {
      const c = componentOf(byId.get(at)!.callFrame);
      if (c !== 'Node.js core' && c !== 'native' && c !== 'V8 / native (unattributed)' && c !== 'GC' && c !== 'other') {
        found = c;
        break;
      }
      at = parent.get(at);
    }
    caller.set(id, found);
    return found;
  };
  const totals = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    const node = byId.get(id);
    if (!node || componentOf(node.callFrame) !== 'Node.js core') continue;
    const c = callerOf(id);
    totals.set(c, (totals.get(c) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  }
  return totals;
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => (t += c.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(t) : reject(new Error(`${url}: ${res.statusCode} ${t}`))));
      })
      .on('error', reject);
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '3000' },
      clients: { type: 'string', default: '16' },
      'alt-source': { type: 'string' },
      'read-cache-ms': { type: 'string' },
      'datastore-host': { type: 'string' },
      keep: { type: 'string' },
      'server-node': { type: 'string' },
    },
  });
  const serverNode = resolveServerNode(values['server-node']);
  console.error(`servers on Node ${serverNode.version} (${serverNode.bin})`);
  const requests = Number(values.requests);
  const clients = Number(values.clients);
  const project = 'session-bench';
  const dir = values.keep ?? mkdtempSync(join(tmpdir(), 'session-profile-'));
  let emulator: Emulator | undefined;
  let host = values['datastore-host'];
  if (!host) {
    emulator = await startEmulator('datastore');
    host = emulator.host;
  }
  const cookie = `__Host-viur_cookie_${project}`;
  const common = {
    SESSION_COOKIE_NAME: cookie,
    DATASTORE_EMULATOR_HOST: host,
    GOOGLE_CLOUD_PROJECT: project,
    BENCH_COUNT_RPCS: '1',
    NODE_ENV: 'production',
  };
  const preload = ['-r', join(BENCH_JS, 'rpcPreload.js')];
  const ns = () => `bench-${randomBytes(4).toString('hex')}`;
  const ff = (target: string, source: string) => [
    ...preload,
    FUNCTIONS_FRAMEWORK,
    `--target=${target}`,
    '--signature-type=http',
    `--source=${source}`,
  ];
  const defs: Array<{
    label: string;
    stack: LoadSpec['stack'];
    cookieName: string;
    args: (port: number) => string[];
    env: Record<string, string>;
  }> = [
    {
      label: 'ours',
      stack: 'ours',
      cookieName: cookie,
      args: (p) => [...ff('sessionApi', FUNCTIONS_SOURCE), `--port=${p}`],
      env: { SESSION_NAMESPACE: ns() },
    },
    ...(values['alt-source']
      ? [
          {
            label: 'ours-alt',
            stack: 'ours' as const,
            cookieName: cookie,
            args: (p: number) => [...ff('sessionApi', values['alt-source']!), `--port=${p}`],
            env: { SESSION_NAMESPACE: ns() },
          },
        ]
      : []),
    ...(values['read-cache-ms']
      ? [
          {
            label: 'ours-cache',
            stack: 'ours' as const,
            cookieName: cookie,
            args: (p: number) => [...ff('sessionApi', FUNCTIONS_SOURCE), `--port=${p}`],
            env: { SESSION_NAMESPACE: ns(), SESSION_READ_CACHE_MS: values['read-cache-ms'] },
          },
        ]
      : []),
    {
      label: 'express',
      stack: 'express',
      cookieName: 'connect.sid',
      args: () => [...preload, join(BENCH_JS, 'expressServer.js')],
      env: { BENCH_NAMESPACE: ns() },
    },
    {
      label: 'ff-express',
      stack: 'ff-express',
      cookieName: 'connect.sid',
      args: (p) => [...ff('expressSession', join(BENCH_JS, 'expressFunction.js')), `--port=${p}`],
      env: { BENCH_NAMESPACE: ns() },
    },
  ];
  const servers: Array<{ label: string; stack: LoadSpec['stack']; cookieName: string; server: ServerProcess }> = [];
  try {
    for (const d of defs) {
      const port = await freePort();
      servers.push({
        ...d,
        server: await startServer(d.args(port), { ...common, ...d.env, PORT: String(port) }, port, d.label, serverNode.bin),
      });
    }
    const load = async (s: (typeof servers)[number], n: number): Promise<LoadResult> => {
      const spec: LoadSpec = {
        url: s.server.url,
        stack: s.stack,
        label: s.label,
        cookieName: s.cookieName,
        clients,
        requests: n,
        warmup: 100,
        writeRatio: 0.1,
        probe: 0,
        timeoutMs: 300_000,
      };
      const { stdout, stderr, code } = await runNode([join(BENCH_JS, 'loadgen.js'), JSON.stringify(spec)], {}, 310_000);
      if (code !== 0) throw new Error(`load generator failed for ${s.label}: ${stderr}`);
      return lastJson<LoadResult>(stdout);
    };
    for (const s of servers) {
      const r = await load(s, requests);
      console.error(`warm-up ${s.label}: ${r.throughput} req/s, ${r.serverCpuMsPerRequest} ms CPU/request`);
    }
    const rows: Array<{
      label: string;
      perRequest: Map<string, number>;
      total: number;
      measured: number;
      node: string;
      cpuMs: number;
      nodeCore: Array<{ fn: string; ms: number }>;
      nodeCoreCallers: Array<{ caller: string; ms: number }>;
    }> = [];
    for (const s of servers) {
      await get(`${s.server.url}/__profile/start`);
      const r = await load(s, requests);
      const file = join(dir, `${s.label}.cpuprofile`);
      await get(`${s.server.url}/__profile/stop?file=${encodeURIComponent(file)}`);
      // The profiled window also holds the load generator's setup and warm-up requests.
      const measured = r.requests + 100 + 3 * clients;
      const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
      const totals = selfTimeByComponent(profile);
      const perRequest = new Map([...totals].map(([k, v]) => [k, v / measured]));
      rows.push({
        label: s.label,
        perRequest,
        total: [...perRequest.values()].reduce((a, b) => a + b, 0),
        measured,
        node: r.serverNode,
        cpuMs: r.serverCpuMsPerRequest,
        nodeCore: topFunctions(profile, 'Node.js core', 8).map((f) => ({ fn: f.fn, ms: f.ms / measured })),
        nodeCoreCallers: [...nodeCoreByCaller(profile)].sort((a, b) => b[1] - a[1]).map(([caller, ms]) => ({ caller, ms: ms / measured })),
      });
    }
    const components = [...new Set(rows.flatMap((r) => [...r.perRequest.keys()]))].sort(
      (a, b) => (rows[0]!.perRequest.get(b) ?? 0) - (rows[0]!.perRequest.get(a) ?? 0),
    );
    const w = Math.max(...components.map((c) => c.length), 9);
    const line = (name: string, cells: string[]) => console.log(`${name.padEnd(w)} ${cells.map((c) => c.padStart(11)).join(' ')}`);
    console.log(
      `CPU ms per request by component (self time, sampled; ${requests} read-mostly requests, ${clients} clients; servers on Node ${[...new Set(rows.map((r) => r.node))].join(', ')})`,
    );
    line(
      'component',
      rows.map((r) => r.label),
    );
    for (const c of components)
      line(
        c,
        rows.map((r) => (r.perRequest.get(c) ?? 0).toFixed(4)),
      );
    line(
      'total',
      rows.map((r) => r.total.toFixed(4)),
    );
    line(
      'process CPU / measured request',
      rows.map((r) => r.cpuMs.toFixed(4)),
    );
    for (const r of rows) {
      console.log(`\nNode.js core, heaviest functions of ${r.label} (self ms per request):`);
      for (const f of r.nodeCore) console.log(`  ${f.ms.toFixed(4)}  ${f.fn}`);
      console.log(`Node.js core of ${r.label} by its nearest caller outside Node core (self ms per request):`);
      for (const c of r.nodeCoreCallers.slice(0, 8)) console.log(`  ${c.ms.toFixed(4)}  ${c.caller}`);
    }
    console.log(
      JSON.stringify({
        dir,
        serverNode: serverNode.version,
        rows: rows.map((r) => ({
          label: r.label,
          node: r.node,
          total: r.total,
          cpuMs: r.cpuMs,
          perRequest: Object.fromEntries(r.perRequest),
          nodeCore: r.nodeCore,
          nodeCoreCallers: r.nodeCoreCallers,
        })),
      }),
    );
  } finally {
    for (const s of servers) await s.server.stop();
    await emulator?.stop();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
