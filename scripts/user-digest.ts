/**
 * `npm run user-digest -- <user id> [--key K | --project P]`: the digest that stands for a user in
 * the kill log lines (SESSION_LOG_USER_IDS=digest), and the Logs Explorer query that finds them
 * (docs/operations.md#finding-a-users-log-lines). The key: --key, else SESSION_LOG_DIGEST_KEY,
 * else the key derived from --project (or GOOGLE_CLOUD_PROJECT) that a deployment without a key of
 * its own uses. Terraform's generated key: `terraform output -raw log_digest_key`.
 */
import { derivedDigestKey, userDigest } from '../lib/setup/log';

export const USER_DIGEST_USAGE = 'usage: npm run user-digest -- <user id> [--key <SESSION_LOG_DIGEST_KEY> | --project <project id>]';

/**
 * The digest and query for the command line; throws an Error with the usage on a mistake.
 *
 * @example
 * userDigestCommand(['alice@example.com', '--key', 'k'], {}); // { digest: '…', query: 'jsonPayload.userDigest="…"' }
 */
export function userDigestCommand(argv: string[], env: NodeJS.ProcessEnv): { digest: string; query: string } {
  let user: string | undefined;
  let key = env.SESSION_LOG_DIGEST_KEY || undefined;
  let project = env.GOOGLE_CLOUD_PROJECT || undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--key' || arg === '--project') {
      const v = argv[++i];
      if (v === undefined || v === '') throw new Error(`${arg} needs a value\n${USER_DIGEST_USAGE}`);
      if (arg === '--key') key = v;
      else project = v;
    } else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}\n${USER_DIGEST_USAGE}`);
    else if (user === undefined) user = arg;
    else throw new Error(`one user id only\n${USER_DIGEST_USAGE}`);
  }
  if (user === undefined || user === '') throw new Error(`the user id is missing\n${USER_DIGEST_USAGE}`);
  if (key === undefined) {
    if (project === undefined) throw new Error(`no key: pass --key, set SESSION_LOG_DIGEST_KEY, or pass --project\n${USER_DIGEST_USAGE}`);
    key = derivedDigestKey(project);
  }
  const digest = userDigest(user, key);
  return { digest, query: `jsonPayload.userDigest="${digest}"` };
}

function main(): void {
  try {
    const { digest, query } = userDigestCommand(process.argv.slice(2), process.env);
    console.log(digest);
    console.error(`Logs Explorer: ${query}`);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(2);
  }
}

if (require.main === module) main();
