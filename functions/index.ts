/**
 * The package's `./functions` entry (`functions-framework --source=dist/functions/index.js`): it
 * registers the three entry points with functions-framework, exactly as Cloud Functions loads them
 * (`--target=NAME`). Configuration is parsed here, at load, so a bad variable stops the process at
 * start with a message naming it. Heavy clients are not loaded here: Datastore on first request,
 * Pub/Sub only where a message is published.
 */
import * as functions from '@google-cloud/functions-framework';
import { startupConfig } from '../lib/setup/runtime';
import { installRequestHooks, requestBodyLimit } from './http/body';
import { killSessionByUser } from './killSessionByUser';
import { sessionApi } from './sessionApi';
import { startClearSessions } from './startClearSessions';

const config = startupConfig();
// The largest data value with its framing, or the push of the largest kill message. The allowed
// origins are asked per request: a runtime set later (setRuntime: the launcher, tests) is followed.
installRequestHooks(requestBodyLimit(config.session.maxDataBytes), { allowedOrigins: () => startupConfig().allowedOrigins });

functions.http('sessionApi', sessionApi);
functions.cloudEvent('killSessionByUser', killSessionByUser);
functions.http('startClearSessions', startClearSessions);

/**
 * The names registered above, for tests and the deployment check.
 *
 * @example
 * for (const name of ENTRY_POINTS) console.log(`gcloud functions deploy ${name} --entry-point=${name}`);
 */
export const ENTRY_POINTS = ['sessionApi', 'killSessionByUser', 'startClearSessions'] as const;
