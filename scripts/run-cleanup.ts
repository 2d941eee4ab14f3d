/**
 * `npm run cleanup [-- URL]`: runs startClearSessions of the running `npm start` once (its address
 * read from launcher.json in SESSION_LOCAL_STATE_DIR, default .local) and prints its report.
 */
import { NoLauncherError, readLauncherState, stateDirFrom } from '../lib/setup/launcherState';

let url = process.argv[2];
if (url === undefined) {
  try {
    url = readLauncherState(stateDirFrom(process.env)).cleanupUrl;
  } catch (err) {
    if (!(err instanceof NoLauncherError)) throw err;
    console.error(`cleanup: ${err.message}`);
    process.exit(1);
  }
}
fetch(url, { method: 'POST' })
  .then(async (res) => {
    console.log(JSON.stringify(await res.json(), null, 2));
    if (!res.ok) process.exit(1);
  })
  .catch((err: unknown) => {
    console.error(`cleanup failed: ${err instanceof Error ? err.message : String(err)} (is npm start running?)`);
    process.exit(1);
  });
