import type { Datastore } from '@google-cloud/datastore';
import type { Clock } from '../core/clock';
import { cryptoRandom, type RandomSource } from '../core/ids';
import type { Config } from '../setup/config';
import { credentialsGate } from '../setup/credentials';
import { ViurSessions } from './sessions';

/**
 * A ViurSessions on the configured project, database, namespace and session kind, with the
 * configured lifetime, logout fields and cookie (SESSION_COOKIE_NAME defaults to ViUR's
 * `viur_cookie_<project>` in viur format). The Datastore client is loaded here, on first use.
 *
 * @example
 * const viur = createViurSessions(loadConfig()); // SESSION_FORMAT=viur, GOOGLE_CLOUD_PROJECT=my-project
 * const { view } = await viur.read(req.headers.cookie);
 */
export function createViurSessions(
  config: Config,
  parts: { clock?: Clock; random?: RandomSource; datastore?: Datastore } = {},
): ViurSessions {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Datastore: Client } = require('@google-cloud/datastore') as typeof import('@google-cloud/datastore');
  const datastore = parts.datastore ?? new Client({ projectId: config.projectId, databaseId: config.databaseId });
  return new ViurSessions({
    datastore,
    kind: config.kind,
    namespace: config.namespace,
    lifetimeSeconds: config.session.lifetimeSeconds,
    persistentFieldsOnLogout: config.session.persistentFieldsOnLogout,
    maxDataKeys: config.session.maxDataKeys,
    maxDataBytes: config.session.maxDataBytes,
    cookie: { name: config.session.cookie.name, sameSite: config.session.cookie.sameSite },
    timeoutMs: config.storeTimeoutMs,
    clock: parts.clock ?? { now: () => Date.now() },
    random: parts.random ?? cryptoRandom,
    ready: credentialsGate(datastore),
  });
}
