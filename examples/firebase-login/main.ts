/**
 * The example's command line (cli.ts runs it): its configuration from flags and the environment,
 * production or against `npm start`.
 */
import type { Server } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stateDirFrom } from '../../lib/setup/launcherState';
import { createLoginApp, type LoginAppOptions } from './app';
import { googleIdTokens, launcherIdentity } from './backendIdentity';
import { certificatesFromFile, FirebaseTokenVerifier, type FirebaseVerifierOptions } from './firebaseToken';
import { LOCAL_PROJECT_ID, localFirebase } from './localFirebase';

export const USAGE = `usage: node firebase-login.js [--local] [--local-firebase] [--port 8090] [--host 127.0.0.1]
       node firebase-login.js mint --uid UID [--email ADDRESS]     (a token of the --local-firebase key set)

  --local           call the session API of the running npm start, with its local admin key
                    (launcher.json in SESSION_LOCAL_STATE_DIR, default .local); without it: SESSION_API_URL,
                    with an ID token of Application Default Credentials for SESSION_API_AUDIENCE
                    (default SESSION_API_URL)
  --local-firebase  trust a local key set (<state dir>/firebase-login/, created if missing) instead of
                    Google's certificates; FIREBASE_PROJECT_ID defaults to ${LOCAL_PROJECT_ID}
  --port            default $PORT, else 8090
  --host            the address to listen on (default 127.0.0.1; 0.0.0.0 in a container, e.g. Cloud Run)

environment: FIREBASE_PROJECT_ID, FIREBASE_TENANT_ID, FIREBASE_REQUIRE_VERIFIED_EMAIL=true,
  FIREBASE_MAX_AUTH_AGE_SECONDS, FIREBASE_CERTS_FILE (a key set instead of Google's: { kid: PEM } or JWKS)`;

export type Command =
  | { command: 'serve'; port: number; host: string; app: LoginAppOptions; describe: string }
  | { command: 'mint'; token: string }
  | { command: 'help' };

/** A command line or environment this cannot use: the message and the usage are printed, exit code 2. */
export class UsageError extends Error {}

function parse(argv: string[], env: Record<string, string | undefined>) {
  try {
    return parseArgs({
      args: argv,
      options: {
        local: { type: 'boolean', default: false },
        'local-firebase': { type: 'boolean', default: false },
        port: { type: 'string', default: env.PORT ?? '8090' },
        host: { type: 'string', default: '127.0.0.1' },
        uid: { type: 'string' },
        email: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** What to do, from the command line and the environment; throws UsageError with a message for a person. */
export function configure(argv: string[], env: Record<string, string | undefined>): Command {
  const { values, positionals } = parse(argv, env);
  if (values.help) return { command: 'help' };
  const stateDir = stateDirFrom(env);
  const localKeys = join(stateDir, 'firebase-login');
  const mint = positionals[0] === 'mint';
  if (positionals.length > (mint ? 1 : 0)) throw new UsageError(`unknown command: ${positionals.join(' ')}`);
  const projectId = env.FIREBASE_PROJECT_ID?.trim() || (values['local-firebase'] || mint ? LOCAL_PROJECT_ID : '');
  if (!projectId) throw new UsageError('FIREBASE_PROJECT_ID is required (or --local-firebase)');

  if (mint) {
    if (!values.uid) throw new UsageError('mint needs --uid');
    const claims = values.email ? { email: values.email, email_verified: true } : {};
    return { command: 'mint', token: localFirebase(localKeys).mint(projectId, values.uid, claims) };
  }

  const verifierOptions: FirebaseVerifierOptions = { projectId, requireVerifiedEmail: env.FIREBASE_REQUIRE_VERIFIED_EMAIL === 'true' };
  if (env.FIREBASE_TENANT_ID) verifierOptions.tenantId = env.FIREBASE_TENANT_ID;
  if (env.FIREBASE_MAX_AUTH_AGE_SECONDS) {
    const seconds = Number(env.FIREBASE_MAX_AUTH_AGE_SECONDS);
    if (!Number.isInteger(seconds) || seconds <= 0) throw new UsageError('FIREBASE_MAX_AUTH_AGE_SECONDS: not a number of seconds');
    verifierOptions.maxAuthAgeSeconds = seconds;
  }
  const certsFile = values['local-firebase'] ? localFirebase(localKeys).certsFile : env.FIREBASE_CERTS_FILE;
  if (certsFile) verifierOptions.certificates = certificatesFromFile(certsFile);
  const verifier = new FirebaseTokenVerifier(verifierOptions);

  let sessionApiUrl: string;
  let backendIdToken;
  if (values.local) {
    const local = launcherIdentity(stateDir);
    sessionApiUrl = local.apiUrl;
    backendIdToken = local.idToken;
  } else {
    sessionApiUrl = env.SESSION_API_URL ?? '';
    if (!sessionApiUrl) throw new UsageError('SESSION_API_URL is required (or --local)');
    backendIdToken = googleIdTokens(env.SESSION_API_AUDIENCE || sessionApiUrl);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: not a port: ${values.port}`);
  return {
    command: 'serve',
    port,
    host: values.host,
    describe: `Firebase project ${projectId} (${certsFile ? `keys from ${certsFile}` : "Google's certificates"}), session API ${sessionApiUrl}`,
    app: {
      verifyIdToken: (token) => verifier.verify(token),
      sessionApiUrl,
      backendIdToken,
      log: ({ status, reason }) => console.warn(`POST /auth/login ${status}: ${reason}`),
    },
  };
}

/** Runs the command; resolves with the listening server (serve) or nothing (mint prints the token, --help the usage). */
export async function main(argv: string[], env: Record<string, string | undefined>): Promise<Server | undefined> {
  const command = configure(argv, env);
  if (command.command !== 'serve') {
    console.log(command.command === 'mint' ? command.token : USAGE);
    return undefined;
  }
  const server = createLoginApp(command.app).listen(command.port, command.host);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : command.port;
  console.log(`POST http://${command.host.includes(':') ? `[${command.host}]` : command.host}:${port}/auth/login: ${command.describe}`);
  return server;
}
