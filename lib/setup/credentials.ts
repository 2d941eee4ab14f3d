/**
 * Credentials are loaded before a Google client makes its first call: a client that fails to load
 * them on its own ends the process and never recovers, while a failed load here is an ordinary,
 * retryable error of the call (docs/design/credentials.md).
 */

/** What this module needs of a Google Cloud client (Datastore, PubSub): its auth and the options its gRPC stubs are built from. */
export interface GoogleClientLike {
  auth: { getClient(): Promise<unknown> };
  options: object;
}

/**
 * What to do about missing credentials, for messages that reach a person.
 *
 * @example
 * log('WARNING', `no credentials: ${CREDENTIALS_HINT}`);
 */
export const CREDENTIALS_HINT =
  'run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a key file), ' +
  'or point the client at an emulator (DATASTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST)';

/**
 * The credentials could not be loaded; `message` says why and what to do, without any secret.
 * `reason` is the first line of the auth library's error. A store call fails with it as the cause
 * of a StoreUnavailableError (503), so the request can be retried once credentials are there.
 *
 * @example
 * new CredentialsUnavailableError('Could not load the default credentials').message;
 * // 'no Google credentials: Could not load the default credentials; run `gcloud auth application-default login` …'
 */
export class CredentialsUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(`no Google credentials: ${reason}; ${CREDENTIALS_HINT}`);
    this.name = 'CredentialsUnavailableError';
  }
}

/**
 * The first line of an error message, bounded: library messages name files and URLs, never key material.
 *
 * @example
 * describeError(new Error('4 DEADLINE_EXCEEDED: deadline exceeded\n    at …')); // '4 DEADLINE_EXCEEDED: deadline exceeded'
 */
export function describeError(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split('\n')[0] ?? '').slice(0, 500);
}

/**
 * Returns `ready()`: resolves once the client's credentials are loaded (at most one load in
 * flight; a success is kept, a failure is not, so a later call tries again), and rejects with
 * CredentialsUnavailableError otherwise. A client on an emulator (insecure channel credentials,
 * exactly the case in which google-gax never asks the auth library) is ready at once. Pass the
 * result as the Datastore store's `ready` option, or await it before a publish
 * (docs/design/credentials.md).
 *
 * @example
 * const datastore = new Datastore({ projectId: 'my-project' });
 * const ready = credentialsGate(datastore as unknown as GoogleClientLike);
 * const store = new DatastoreSessionStore({ datastore, kind: 'viur-session', timeoutMs: 5000, ready });
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
 * `exists` is injected so tests need no files.
 *
 * @example
 * const hint = missingCredentialsHint(process.env, existsSync);
 * if (hint) log('WARNING', hint);
 */
export function missingCredentialsHint(env: Record<string, string | undefined>, exists: (path: string) => boolean): string | undefined {
  if (env.K_SERVICE !== undefined && env.METADATA_SERVER_DETECTION !== 'none') return undefined;
  const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS;
  if (keyFile)
    return exists(keyFile) ? undefined : `GOOGLE_APPLICATION_CREDENTIALS names ${keyFile}, which does not exist: ${CREDENTIALS_HINT}`;
  const configDir = env.CLOUDSDK_CONFIG ?? (env.APPDATA ? `${env.APPDATA}/gcloud` : env.HOME ? `${env.HOME}/.config/gcloud` : undefined);
  if (configDir && exists(`${configDir}/application_default_credentials.json`)) return undefined;
  return `no Google credentials found (no GOOGLE_APPLICATION_CREDENTIALS, no application-default credentials of gcloud); unless this runs on Google Cloud, every Datastore call will fail with 503: ${CREDENTIALS_HINT}`;
}
