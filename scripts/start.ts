/**
 * `npm start`: the whole service on this machine. The three functions run in this one process,
 * each behind the server functions-framework builds for it (the same code path as
 * `functions-framework --target=NAME`), so on the default in-memory store they share one store.
 * With --emulators the store is the Firestore emulator (Datastore mode) and kills travel through
 * the Pub/Sub emulator, both started here.
 */
import type { Server } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEmulator, type Emulator } from './emulators';
import { createDemoServer } from './demoServer';
import { createLocalAdmin } from './localAdmin';

const USAGE = `usage: npm start -- [--emulators] [--port 8080] [--kill-port 8081] [--cleanup-port 8082]
                     [--cleanup-interval SECONDS] [--state-dir .local] [--demo-port 8083]`;

interface Options {
  emulators: boolean;
  port: number;
  killPort: number;
  cleanupPort: number;
  cleanupInterval: number;
  stateDir: string;
  demoPort: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      emulators: { type: 'boolean', default: false },
      port: { type: 'string', default: process.env.PORT ?? '8080' },
      'kill-port': { type: 'string', default: '8081' },
      'cleanup-port': { type: 'string', default: '8082' },
      'cleanup-interval': { type: 'string', default: '0' },
      'state-dir': { type: 'string', default: '.local' },
      'demo-port': { type: 'string', default: '8083' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const port = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--${name} must be a port number`);
    return n;
  };
  const interval = Number(values['cleanup-interval']);
  if (!Number.isInteger(interval) || interval < 0) throw new Error('--cleanup-interval must be a whole number of seconds');
  return {
    emulators: values.emulators!,
    port: port('port', values.port!),
    killPort: port('kill-port', values['kill-port']!),
    cleanupPort: port('cleanup-port', values['cleanup-port']!),
    cleanupInterval: interval,
    stateDir: values['state-dir']!,
    demoPort: port('demo-port', values['demo-port']!),
  };
}

function listen(server: Server, port: number, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new Error(`port ${port} (${what}) is already in use: stop what is using it or pick another port with the options below\n${USAGE}`) : err);
    });
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const project = process.env.GOOGLE_CLOUD_PROJECT ?? 'session-local';
  const topic = process.env.SESSION_KILL_TOPIC ?? 'session-kill';
  const emulators: Emulator[] = [];
  const servers: Server[] = [];
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    if (timer) clearInterval(timer);
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    await Promise.all(emulators.map((e) => e.stop()));
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    const admin = createLocalAdmin(join(options.stateDir, 'admin'));
    const apiUrl = `http://localhost:${options.port}`;
    const killUrl = `http://localhost:${options.killPort}`;
    // Chosen explicitly: the production default (datastore) never falls back to memory by itself.
    Object.assign(process.env, {
      GOOGLE_CLOUD_PROJECT: project,
      SESSION_STORE: options.emulators ? 'datastore' : 'memory',
      SESSION_KILL_TOPIC: topic,
      SESSION_ADMIN_JWKS_FILE: admin.jwksFile,
      SESSION_ADMIN_PRINCIPALS: admin.email,
      SESSION_ADMIN_AUDIENCE: apiUrl,
      METADATA_SERVER_DETECTION: 'none',
    });
    if (options.emulators) {
      console.log('starting the Firestore (Datastore mode) and Pub/Sub emulators…');
      const [datastore, pubsub] = await Promise.all([startEmulator('datastore'), startEmulator('pubsub')]);
      emulators.push(datastore, pubsub);
      process.env.DATASTORE_EMULATOR_HOST = datastore.host;
      process.env.PUBSUB_EMULATOR_HOST = pubsub.host;
    } else {
      // No Pub/Sub here: kill messages are pushed straight to the kill function, as a push subscription would.
      process.env.SESSION_KILL_PUSH_URL = `${killUrl}/projects/${project}/topics/${topic}`;
    }

    await import('../functions/index');
    const { getTestServer } = await import('@google-cloud/functions-framework/testing');
    const api = getTestServer('sessionApi');
    const kill = getTestServer('killSessionByUser');
    const cleanup = getTestServer('startClearSessions');
    servers.push(api, kill, cleanup);
    const ports = [
      await listen(api, options.port, 'sessionApi'),
      await listen(kill, options.killPort, 'killSessionByUser'),
      await listen(cleanup, options.cleanupPort, 'startClearSessions'),
    ];

    if (options.emulators) {
      const { PubSub } = await import('@google-cloud/pubsub');
      const pubsub = new PubSub({ projectId: project });
      const [t] = await pubsub.topic(topic).get({ autoCreate: true });
      const subscription = t.subscription(`${topic}-push`);
      const [exists] = await subscription.exists();
      const pushEndpoint = `http://localhost:${ports[1]}/projects/${project}/topics/${topic}`;
      if (!exists) await t.createSubscription(`${topic}-push`, { pushConfig: { pushEndpoint } });
      await pubsub.close();
    }

    if (options.cleanupInterval > 0) {
      timer = setInterval(() => {
        fetch(`http://localhost:${ports[2]}/`, { method: 'POST' }).catch(() => undefined);
      }, options.cleanupInterval * 1000);
    }

    const token = admin.mint(`http://localhost:${ports[0]}`, { exp: Math.floor(Date.now() / 1000) + 12 * 3600 });
    const demo = createDemoServer({ apiUrl: `http://127.0.0.1:${ports[0]}`, adminToken: () => admin.mint(apiUrl, { exp: Math.floor(Date.now() / 1000) + 300 }) });
    servers.push(demo);
    const demoPort = await listen(demo, options.demoPort, 'demo page');
    console.log(
      [
        '',
        `store: ${options.emulators ? `Firestore emulator (Datastore mode) at ${process.env.DATASTORE_EMULATOR_HOST}, Pub/Sub emulator at ${process.env.PUBSUB_EMULATOR_HOST}` : 'in memory (local use only: nothing survives a restart)'}`,
        `sessionApi          http://localhost:${ports[0]}`,
        `killSessionByUser   http://localhost:${ports[1]}   (${options.emulators ? `push subscription ${topic}-push` : 'kill messages are pushed here directly'})`,
        `startClearSessions  http://localhost:${ports[2]}   (npm run cleanup)`,
        `admin identity      ${admin.email} (JWKS: ${admin.jwksFile})`,
        `demo page           http://localhost:${demoPort}   (the API on the page's origin, as a Hosting rewrite serves it)`,
        '',
        'A privileged token for login and kill, valid 12 hours (npm run mint-token makes a new one):',
        `ADMIN_TOKEN=${token}`,
        '',
        'Ctrl-C stops everything.',
      ].join('\n'),
    );
  } catch (err) {
    console.error(`npm start failed: ${err instanceof Error ? err.message : String(err)}`);
    await stop(1);
  }
}

void main();
