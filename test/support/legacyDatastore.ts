import { Datastore } from '@google-cloud/datastore';
import { DatastoreSessionStore } from '../../lib/store/datastoreStore';
import { uniqueNamespace } from './fixtures';

/**
 * A client of the legacy Cloud Datastore emulator (started by globalSetup next to the Firestore
 * one). Unlike the Firestore emulator it handles transactions opened by their first lookup, so a
 * store on it runs with `separateBegin: false`: the path production takes.
 */
export function legacyDatastore(): Datastore {
  const host = process.env.LEGACY_DATASTORE_EMULATOR_HOST;
  if (!host) throw new Error('LEGACY_DATASTORE_EMULATOR_HOST is not set: the legacy emulator is started by test/support/globalSetup.ts');
  return new Datastore({ projectId: process.env.GOOGLE_CLOUD_PROJECT ?? 'session-test', apiEndpoint: host });
}

export function legacyDatastoreStore(
  namespace = uniqueNamespace('legacy'),
  ds = legacyDatastore(),
  options: { timeoutMs?: number; maxAttempts?: number } = {},
): DatastoreSessionStore {
  return new DatastoreSessionStore({
    datastore: ds,
    kind: 'viur-session',
    namespace,
    timeoutMs: options.timeoutMs ?? 10_000,
    maxAttempts: options.maxAttempts,
    separateBegin: false,
  });
}
