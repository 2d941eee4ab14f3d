/** The command line of `npm start` (scripts/start.ts): options, their checks, and the usage text. */
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { DEFAULT_STATE_DIR } from '../lib/setup/launcherState';

export const USAGE = `usage: npm start -- [--emulators] [--port 8080] [--kill-port 8081] [--cleanup-port 8082]
                     [--cleanup-interval SECONDS] [--state-dir ${DEFAULT_STATE_DIR}] [--demo-port 8083]
                     [--host 127.0.0.1] [--static DIR]

  --emulators               Firestore (Datastore mode) and Pub/Sub emulators instead of the memory store
  --port, --kill-port, --cleanup-port
                            ports of sessionApi, killSessionByUser, startClearSessions
  --cleanup-interval S      run the cleanup every S seconds (default 0: only on npm run cleanup)
  --state-dir DIR           local admin key and launcher.json (the tools read SESSION_LOCAL_STATE_DIR, default ${DEFAULT_STATE_DIR})
  --demo-port PORT          the demo page of the browser client
  --host ADDR               the address every server listens on (default 127.0.0.1: this machine only;
                            0.0.0.0 or :: for every interface, e.g. a phone on your network or a container)
  --static DIR              serve your own page from DIR at the demo port's / instead of the demo page,
                            with the API (/session…, /users…), /demo/login and /client/sessionClient.mjs
                            on the same origin`;

export interface LauncherOptions {
  emulators: boolean;
  port: number;
  killPort: number;
  cleanupPort: number;
  cleanupInterval: number;
  stateDir: string;
  demoPort: number;
  /** The address the servers listen on. */
  host: string;
  /** The directory served at the demo port instead of the demo page, if any. */
  staticDir?: string;
}

/** A command line the launcher cannot use: the message and the usage are printed, exit code 2. */
export class UsageError extends Error {}

/** The options, or 'help'; throws UsageError for unknown options and bad values. */
export function parseLauncherOptions(argv: string[], env: Record<string, string | undefined>): LauncherOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        emulators: { type: 'boolean', default: false },
        port: { type: 'string', default: env.PORT ?? '8080' },
        'kill-port': { type: 'string', default: '8081' },
        'cleanup-port': { type: 'string', default: '8082' },
        'cleanup-interval': { type: 'string', default: '0' },
        'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
        'demo-port': { type: 'string', default: '8083' },
        host: { type: 'string', default: '127.0.0.1' },
        static: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return 'help';
  const port = (name: string, v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n > 65535) throw new UsageError(`--${name} must be a port number (0 to 65535), not ${JSON.stringify(v)}`);
    return n;
  };
  const intervalText = values['cleanup-interval'];
  if (!/^\d+$/.test(intervalText))
    throw new UsageError(`--cleanup-interval must be a whole number of seconds, not ${JSON.stringify(intervalText)}`);
  const host = values.host;
  // An IP address, or a host name (localhost, a name of this machine): what listen() takes.
  if (
    isIP(host) === 0 &&
    !/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host)
  )
    throw new UsageError(`--host must be an IP address or a host name, not ${JSON.stringify(host)}`);
  if (values.static === '') throw new UsageError('--static needs a directory');
  return {
    emulators: values.emulators,
    port: port('port', values.port),
    killPort: port('kill-port', values['kill-port']),
    cleanupPort: port('cleanup-port', values['cleanup-port']),
    cleanupInterval: Number(intervalText),
    stateDir: values['state-dir'],
    demoPort: port('demo-port', values['demo-port']),
    host,
    ...(values.static !== undefined ? { staticDir: values.static } : {}),
  };
}
