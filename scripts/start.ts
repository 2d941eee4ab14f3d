/**
 * `npm start`: the whole service on this machine. The three functions run in this one process,
 * each behind the server functions-framework builds for it (the same code path as
 * `functions-framework --target=NAME`), so on the default in-memory store they share one store.
 * With --emulators the store is the Firestore emulator (Datastore mode) and kills travel through
 * the Pub/Sub emulator, both started here.
 */
import { rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { join, resolve } from 'node:path';
import { DEFAULT_STATE_DIR, type LauncherState, writeLauncherState } from '../lib/setup/launcherState';
import { startEmulator, type Emulator } from './emulators';
import { createDemoServer, LOCAL_HOSTS } from './demoServer';
import { parseLauncherOptions, USAGE, UsageError } from './launcherOptions';
import { createLocalAdmin } from './localAdmin';
import { StaticDirError, staticFiles, staticRoot } from './staticFiles';

/**
 * Sets what the functions read from the environment, and says which values from the user's
 * environment it replaces: a SESSION_STORE=datastore that silently became memory cost a user an hour.
 */
function assignEnvironment(values: Record<string, string>): string[] {
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(values)) {
    const before = process.env[name];
    if (before !== undefined && before !== '' && before !== value)
      warnings.push(`npm start: ${name}=${before} from the environment is replaced by ${value}`);
    process.env[name] = value;
  }
  return warnings;
}

function listen(server: Server, port: number, what: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(
              `port ${port} (${what}) is already in use: stop what is using it or pick another port with the options below\n${USAGE}`,
            )
          : err,
      );
    });
    server.listen(port, host, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * The host part of the URLs that reach a server listening on `host`: those the launcher prints and
 * those it uses itself (the kill push, the demo's proxy, launcher.json for the tools). `localhost`
 * for the default and for every interface; the address itself otherwise (IPv6 in brackets).
 */
function urlHost(host: string): string {
  if (host === '127.0.0.1' || host === 'localhost' || WILDCARD.has(host)) return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

/** Ready-to-paste lines that point a shell at this stack. */
function exportLines(state: LauncherState): string[] {
  const vars: Record<string, string | undefined> = {
    GOOGLE_CLOUD_PROJECT: state.project,
    DATASTORE_EMULATOR_HOST: state.datastoreEmulatorHost,
    PUBSUB_EMULATOR_HOST: state.pubsubEmulatorHost,
    SESSION_KILL_PUSH_URL: state.killPushUrl,
    SESSION_LOCAL_STATE_DIR: resolve(DEFAULT_STATE_DIR) === state.stateDir ? undefined : state.stateDir,
  };
  return Object.entries(vars)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `export ${k}=${v}`);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseLauncherOptions(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`npm start: ${err.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (parsed === 'help') {
    console.log(USAGE);
    process.exit(0);
  }
  const options = parsed;
  let ownPage: string | undefined;
  try {
    ownPage = options.staticDir === undefined ? undefined : staticRoot(options.staticDir);
  } catch (err) {
    if (!(err instanceof StaticDirError)) throw err;
    process.stderr.write(`npm start: ${err.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  const at = urlHost(options.host);
  const stateDir = resolve(options.stateDir);
  const project = process.env.GOOGLE_CLOUD_PROJECT ?? 'session-local';
  const topic = process.env.SESSION_KILL_TOPIC ?? 'session-kill';
  const emulators: Emulator[] = [];
  const servers: Server[] = [];
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;
  let stateFile: string | undefined;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    if (timer) clearInterval(timer);
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    await Promise.all(emulators.map((e) => e.stop()));
    if (stateFile) rmSync(stateFile, { force: true });
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    const admin = createLocalAdmin(join(stateDir, 'admin'));
    const apiUrl = `http://${at}:${options.port}`;
    const killUrl = `http://${at}:${options.killPort}`;
    // Chosen explicitly: the production default (datastore) never falls back to memory by itself.
    const warnings = assignEnvironment({
      GOOGLE_CLOUD_PROJECT: project,
      SESSION_STORE: options.emulators ? 'datastore' : 'memory',
      SESSION_KILL_TOPIC: topic,
      SESSION_ADMIN_JWKS_FILE: admin.jwksFile,
      SESSION_ADMIN_PRINCIPALS: admin.email,
      SESSION_ADMIN_AUDIENCE: apiUrl,
      METADATA_SERVER_DETECTION: 'none',
    });
    if (options.emulators) {
      const started = Date.now();
      console.log('starting the Firestore (Datastore mode) and Pub/Sub emulators…');
      const [datastore, pubsub] = await Promise.all([startEmulator('datastore'), startEmulator('pubsub')]);
      emulators.push(datastore, pubsub);
      console.log(`emulators ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      warnings.push(...assignEnvironment({ DATASTORE_EMULATOR_HOST: datastore.host, PUBSUB_EMULATOR_HOST: pubsub.host }));
    } else {
      // No Pub/Sub here: kill messages are pushed straight to the kill function, as a push subscription would.
      warnings.push(...assignEnvironment({ SESSION_KILL_PUSH_URL: `${killUrl}/projects/${project}/topics/${topic}` }));
    }
    // Locally every request gets its line (there is no Cloud Run request log); an explicit choice stays.
    process.env.SESSION_LOG_REQUESTS ??= 'all';
    for (const w of warnings) console.warn(w);

    await import('../functions/index');
    const { getTestServer } = await import('@google-cloud/functions-framework/testing');
    const api = getTestServer('sessionApi');
    const kill = getTestServer('killSessionByUser');
    const cleanup = getTestServer('startClearSessions');
    servers.push(api, kill, cleanup);
    const ports = [
      await listen(api, options.port, 'sessionApi', options.host),
      await listen(kill, options.killPort, 'killSessionByUser', options.host),
      await listen(cleanup, options.cleanupPort, 'startClearSessions', options.host),
    ];

    if (options.emulators) {
      const { PubSub } = await import('@google-cloud/pubsub');
      const pubsub = new PubSub({ projectId: project });
      const [t] = await pubsub.topic(topic).get({ autoCreate: true });
      const subscription = t.subscription(`${topic}-push`);
      const [exists] = await subscription.exists();
      const pushEndpoint = `http://${at}:${ports[1]}/projects/${project}/topics/${topic}`;
      if (!exists) await t.createSubscription(`${topic}-push`, { pushConfig: { pushEndpoint } });
      await pubsub.close();
    }

    if (options.cleanupInterval > 0) {
      timer = setInterval(() => {
        fetch(`http://${at}:${ports[2]}/`, { method: 'POST' }).catch(() => undefined);
      }, options.cleanupInterval * 1000);
    }

    const killPushUrl = process.env.SESSION_KILL_PUSH_URL;
    const state: LauncherState = {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      stateDir,
      project,
      topic,
      store: options.emulators ? 'datastore' : 'memory',
      apiUrl: `http://${at}:${ports[0]}`,
      killUrl: `http://${at}:${ports[1]}`,
      cleanupUrl: `http://${at}:${ports[2]}/`,
      audience: apiUrl,
      adminEmail: admin.email,
      jwksFile: admin.jwksFile,
      privateKeyFile: admin.privateKeyFile,
      ...(options.emulators
        ? { datastoreEmulatorHost: process.env.DATASTORE_EMULATOR_HOST, pubsubEmulatorHost: process.env.PUBSUB_EMULATOR_HOST }
        : { killPushUrl }),
    };
    const demo = createDemoServer({
      apiUrl: `http://${at === 'localhost' ? '127.0.0.1' : at}:${ports[0]}`,
      adminToken: () => admin.mint(apiUrl, { exp: Math.floor(Date.now() / 1000) + 300 }),
      ...(ownPage ? { files: staticFiles(ownPage) } : {}),
      // The address the launcher prints is a name the demo answers to, besides the loopback names.
      hosts: at === 'localhost' ? LOCAL_HOSTS : [...LOCAL_HOSTS, at.toLowerCase()],
    });
    servers.push(demo);
    const demoPort = await listen(demo, options.demoPort, 'demo page', options.host);
    const demoUrl = `http://${at}:${demoPort}`;
    stateFile = writeLauncherState(state);

    const token = admin.mint(apiUrl, { exp: Math.floor(Date.now() / 1000) + 12 * 3600 });
    console.log(
      [
        '',
        `store: ${options.emulators ? `Firestore emulator (Datastore mode) at ${process.env.DATASTORE_EMULATOR_HOST}, Pub/Sub emulator at ${process.env.PUBSUB_EMULATOR_HOST}` : 'in memory (local use only: nothing survives a restart)'}`,
        `sessionApi          http://${at}:${ports[0]}`,
        `killSessionByUser   http://${at}:${ports[1]}   (${options.emulators ? `push subscription ${topic}-push` : 'kill messages are pushed here directly'})`,
        `startClearSessions  http://${at}:${ports[2]}   (npm run cleanup)`,
        `admin identity      ${admin.email} (JWKS: ${admin.jwksFile})`,
        ownPage
          ? `your page           ${demoUrl}   (${ownPage}; the API, /demo/login and /client/sessionClient.mjs on the same origin)`
          : `demo page           ${demoUrl}   (the API on the page's origin, as a Hosting rewrite serves it)`,
        ...(WILDCARD.has(options.host) || !LOOPBACK.test(options.host)
          ? [
              `listening on ${options.host}: other machines that reach this one can use the API, the login relay and the kill route (local use only)`,
            ]
          : []),
        `launcher state      ${stateFile} (npm run mint-token, npm run cleanup and session-kill --local follow it)`,
        '',
        'For your own tools and clients in another terminal:',
        ...exportLines(state),
        '',
        'A privileged token for login and kill, valid 12 hours (npm run mint-token makes a new one):',
        `ADMIN_TOKEN=${token}`,
        '',
        'Ctrl-C stops everything.',
        '',
        ownPage
          ? `Next step: open ${demoUrl}/ — your page; it calls the API as fetch('/session…') and imports the client from /client/sessionClient.mjs.`
          : `Next step: open ${demoUrl} for the demo page, or from another terminal: curl -s http://${at}:${ports[0]}/session   (README: "Try it locally")`,
      ].join('\n'),
    );
  } catch (err) {
    console.error(`npm start failed: ${err instanceof Error ? err.message : String(err)}`);
    await stop(1);
  }
}

void main();
