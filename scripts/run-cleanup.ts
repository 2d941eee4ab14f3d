/** `npm run cleanup [-- URL]`: runs startClearSessions of the local stack once and prints its report. */
const url = process.argv[2] ?? 'http://localhost:8082/';
fetch(url, { method: 'POST' })
  .then(async (res) => {
    console.log(JSON.stringify(await res.json(), null, 2));
    if (!res.ok) process.exit(1);
  })
  .catch((err: unknown) => {
    console.error(`cleanup failed: ${err instanceof Error ? err.message : String(err)} (is npm start running?)`);
    process.exit(1);
  });
