/**
 * Credentials are loaded before a Google client makes its first call.
 *
 * Why: the generated gRPC clients (Datastore, Pub/Sub) build their stub on first use and, when the
 * credentials cannot be loaded, re-throw that failure from a promise nobody awaits
 * (`this.initialize().catch(err => { throw err })`). Node ends the process on such an unhandled
 * rejection (functions-framework: "Process exited with code 16"), and the client keeps the failed
 * stub, so it never recovers. Loading the credentials first, on the very GoogleAuth instance the
 * stub will use, means the stub is only built once they are there (then it reuses the cached
 * client); a failure is an ordinary error of the call that can be answered with a 503 and retried.
 */

/** What this module needs of a Google Cloud client (Datastore, PubSub): its auth and the options its gRPC stubs are built from. */
export interface GoogleClientLike {
  auth: { getClient(): Promise<unknown> };
  options: object;
}

/** What to do about missing credentials, for messages that reach a person. */
export const CREDENTIALS_HINT =
  'run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a key file), ' +
  'or point the client at an emulator (DATASTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST)';

/** The credentials could not be loaded; `message` says why and what to do, without any secret. */
export class CredentialsUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(`no Google credentials: ${reason}; ${CREDENTIALS_HINT}`);
    this.name = 'CredentialsUnavailableError';
  }
}

/** The first line of an error message, bounded: library messages name files and URLs, never key material. */
export function describeError(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split('\n')[0] ?? '').slice(0, 500);
}

/**
 * Returns `ready()`: resolves once the client's credentials are loaded (at most one load in
 * flight; a success is kept, a failure is not, so a later call tries again), and rejects with
 * CredentialsUnavailableError otherwise. A client on an emulator (insecure channel credentials,
 * exactly the case in which google-gax never asks the auth library) is ready at once.
 */
export function credentialsGate(client: GoogleClientLike): () => Promise<void> {
  const options = client.options as { sslCreds?: unknown; auth?: unknown };
  if (options.sslCreds !== undefined) return async () => undefined;
  // The stubs are built from these options: make them use the instance loaded below.
  options.auth = client.auth;
  let loaded = false;
  let pending: Promise<void> | undefined;
  return async () => {
    if (loaded) return;
    pending ??= client.auth.getClient().then(
      () => {
        loaded = true;
        pending = undefined;
      },
      (err: unknown) => {
        pending = undefined;
        throw new CredentialsUnavailableError(describeError(err));
      },
    );
    return pending;
  };
}

/**
 * A start-up hint when no credentials can be found where the auth library looks for them outside
 * Google Cloud (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default file). Only files are
 * checked, nothing is loaded, so it costs a cold start nothing; on Google Cloud (K_SERVICE set by
 * Cloud Functions and Cloud Run) the metadata server provides them and no hint is given.
 */
export function missingCredentialsHint(env: Record<string, string | undefined>, exists: (path: string) => boolean): string | undefined {
  if (env.K_SERVICE !== undefined && env.METADATA_SERVER_DETECTION !== 'none') return undefined;
  const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS;
  if (keyFile) return exists(keyFile) ? undefined : `GOOGLE_APPLICATION_CREDENTIALS names ${keyFile}, which does not exist: ${CREDENTIALS_HINT}`;
  const configDir = env.CLOUDSDK_CONFIG ?? (env.APPDATA ? `${env.APPDATA}/gcloud` : env.HOME ? `${env.HOME}/.config/gcloud` : undefined);
  if (configDir && exists(`${configDir}/application_default_credentials.json`)) return undefined;
  return `no Google credentials found (no GOOGLE_APPLICATION_CREDENTIALS, no application-default credentials of gcloud); unless this runs on Google Cloud, every Datastore call will fail with 503: ${CREDENTIALS_HINT}`;
}
