/**
 * The baseline app of expressServer.ts registered as an HTTP function, so that it runs under
 * functions-framework exactly as sessionApi does: the "ff-express" stack of the request benchmark.
 * It shows what the platform (functions-framework: its body parsers, per-request domain, execution
 * context) costs any session stack deployed as a Cloud Function, apart from the session code.
 */
import * as functions from '@google-cloud/functions-framework';
import { createApp } from './expressServer';

functions.http('expressSession', createApp());
