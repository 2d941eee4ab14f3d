import { startEmulator, type Emulator } from '../../scripts/emulators';

/**
 * Starts the Firestore emulator (Datastore mode) and the Pub/Sub emulator once per test run on
 * free ports; workers inherit the standard *_EMULATOR_HOST switches. Also the legacy Datastore
 * emulator (LEGACY_DATASTORE_EMULATOR_HOST), the one that runs the production transaction path
 * (test/support/legacyDatastore.ts). Fails loudly when gcloud is missing: the emulator tests never
 * skip silently.
 */
export default async function globalSetup(): Promise<void> {
  // Progress on stderr: the emulators take a while on a small machine, and jest is silent meanwhile.
  const started = Date.now();
  process.stderr.write(
    '\nglobalSetup: starting the Firestore emulator (Datastore mode), the Pub/Sub emulator and the legacy Datastore emulator (gcloud, Java)…\n',
  );
  const [datastore, pubsub, legacy] = await Promise.all([
    startEmulator('datastore'),
    startEmulator('pubsub'),
    startEmulator('datastore-legacy'),
  ]);
  process.stderr.write(
    `globalSetup: emulators ready in ${((Date.now() - started) / 1000).toFixed(1)} s (Datastore ${datastore.host}, Pub/Sub ${pubsub.host}, legacy Datastore ${legacy.host})\n`,
  );
  (globalThis as unknown as { __emulators: Emulator[] }).__emulators = [datastore, pubsub, legacy];
  process.env.LEGACY_DATASTORE_EMULATOR_HOST = legacy.host;
  process.env.DATASTORE_EMULATOR_HOST = datastore.host;
  process.env.PUBSUB_EMULATOR_HOST = pubsub.host;
  process.env.GOOGLE_CLOUD_PROJECT = 'session-test';
  // No metadata server here: without this, the auth library probes for one on first use.
  process.env.METADATA_SERVER_DETECTION = 'none';
  process.env.TEST_DATASTORE_EMULATOR_PID = String(datastore.pid);
}
