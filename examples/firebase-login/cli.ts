/**
 * `node firebase-login.js …` (cli.ts bundled, see README.md): runs main(); a usage error prints the
 * message and the usage (exit code 2), another error its message (exit code 1).
 */
import { main, USAGE, UsageError } from './main';

main(process.argv.slice(2), process.env).catch((err: unknown) => {
  console.error(`firebase-login: ${err instanceof Error ? err.message : String(err)}${err instanceof UsageError ? `\n\n${USAGE}` : ''}`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
