#!/usr/bin/env node
/**
 * session-kill: publishes a kill message to the kill topic and prints its message id.
 * Exit codes: 0 published, 1 publishing failed, 2 bad arguments (usage on stderr).
 * The message format is in docs/kill-messages.md.
 *
 *   session-kill --user alice --project my-project
 *   session-kill --users a,b --issued-at 2026-01-01T12:00:00Z
 *   session-kill --all --local
 */
import { parseArgs } from 'node:util';
import { type KillTarget, MalformedKillMessageError, killMessageData, parseIssuedAt } from '../lib/jobs/killMessage';
import { publishKill, pushPublisher } from '../lib/jobs/killPublisher';
import { GUEST_USER, TOPIC_ID_PATTERN } from '../lib/core/limits';
import { type LauncherState, NoLauncherError, readLauncherState, stateDirFrom } from '../lib/setup/launcherState';
import { KeyPathError, viurUser } from '../lib/viur/userKey';

const USAGE = `usage: session-kill (--user ID | --guests | --all | --users ID,ID,...) [--issued-at ISO-8601] [--topic TOPIC] [--project PROJECT]
                    [--local [--state-dir DIR]]

  --user ID          kill the sessions of this user (SESSION_FORMAT=viur: the stored user string,
                     or a key path such as user/alice or user/123, converted by the function)
  --guests           kill every session without a user
  --all              kill every session
  --users A,B,...    kill the sessions of each of these users (one unit of work per user)
  --issued-at T      only sessions created at or before T (default: the publish time; no effect in
                     viur format, where sessions have no creation time)
  --topic TOPIC      kill topic (default: $SESSION_KILL_TOPIC or session-kill)
  --project PROJECT  Google Cloud project (default: $GOOGLE_CLOUD_PROJECT)
  --local            send to the stack npm start runs (its launcher.json): its project, topic, and
                     Pub/Sub emulator or kill function; never the cloud
  --state-dir DIR    with --local: the launcher's --state-dir (default: $SESSION_LOCAL_STATE_DIR or .local)

Honours PUBSUB_EMULATOR_HOST; with SESSION_KILL_PUSH_URL set (the local stack of npm start on
the memory store) the message is pushed to that URL instead. Prints the message id on success.`;

/** Bad arguments: printed with the usage, exit code 2. */
class UsageError extends Error {}

/** What the command line asks for: the kill target and cut-off, and where to publish it. */
export interface CliRequest {
  target: KillTarget;
  issuedAt: Date | undefined;
  topic: string;
  projectId: string;
  /** With --local: the running launcher this kill goes to. */
  local?: LauncherState;
}

/**
 * Reads the arguments (without `node` and the script) and the environment into a CliRequest, or
 * 'help' for --help. Throws UsageError for bad arguments (exactly one target; --issued-at, --topic
 * and the target are checked with the consumer's rules, so the CLI never publishes a message the
 * function would reject) and NoLauncherError when --local finds no running launcher.
 *
 * @example
 * parseCli(['--user', 'alice', '--project', 'my-project'], {});
 * // { target: { user: 'alice' }, issuedAt: undefined, topic: 'session-kill', projectId: 'my-project' }
 */
export function parseCli(argv: string[], env: Record<string, string | undefined>): CliRequest | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        user: { type: 'string' },
        guests: { type: 'boolean' },
        all: { type: 'boolean' },
        users: { type: 'string' },
        'issued-at': { type: 'string' },
        topic: { type: 'string' },
        project: { type: 'string' },
        local: { type: 'boolean' },
        'state-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) return 'help';
  const chosen = (['user', 'guests', 'all', 'users'] as const).filter((k) => values[k] !== undefined && values[k] !== false);
  if (chosen.length !== 1) throw new UsageError('give exactly one of --user, --guests, --all, --users');
  let target: KillTarget;
  if (values.user !== undefined) target = { user: values.user };
  else if (values.guests) target = { user: GUEST_USER };
  else if (values.all) target = { user: null };
  else
    target = {
      users: (values.users ?? '')
        .split(',')
        .map((u) => u.trim())
        .filter((u) => u.length > 0),
    };

  let issuedAt: Date | undefined;
  try {
    issuedAt = values['issued-at'] === undefined ? undefined : parseIssuedAt(values['issued-at']);
  } catch (err) {
    if (err instanceof MalformedKillMessageError)
      throw new UsageError(`--issued-at ${JSON.stringify(values['issued-at'])}: ${err.message.replace(/^\w+: /, '')}`);
    throw err;
  }
  if (values['state-dir'] !== undefined && !values.local) throw new UsageError('--state-dir goes with --local');
  // Only on request: a stale local file must never redirect a kill meant for a real project.
  const local = values.local ? readLauncherState(values['state-dir'] ?? stateDirFrom(env)) : undefined;
  const topic = values.topic ?? local?.topic ?? (env.SESSION_KILL_TOPIC?.trim() || 'session-kill');
  if (!TOPIC_ID_PATTERN.test(topic)) throw new UsageError(`--topic: ${JSON.stringify(topic)} is not a Pub/Sub topic id`);
  const projectId = values.project ?? local?.project ?? (env.GOOGLE_CLOUD_PROJECT?.trim() || env.GCLOUD_PROJECT?.trim());
  if (!projectId) throw new UsageError('no project: give --project or set GOOGLE_CLOUD_PROJECT');
  // The consumer's own rules, so the CLI never publishes a message the function would reject.
  try {
    killMessageData(target, issuedAt);
  } catch (err) {
    if (err instanceof MalformedKillMessageError) throw new UsageError(err.message);
    throw err;
  }
  // With SESSION_FORMAT=viur in the environment, a key path is checked as the function will convert it.
  if (env.SESSION_FORMAT?.trim() === 'viur') {
    try {
      for (const user of 'users' in target ? target.users : [target.user]) viurUser(user, { projectId });
    } catch (err) {
      if (err instanceof KeyPathError) throw new UsageError(err.message);
      throw err;
    }
  }
  return { target, issuedAt, topic, projectId, ...(local ? { local } : {}) };
}

async function publishViaPush(request: CliRequest, url: string): Promise<string> {
  const publisher = pushPublisher({ projectId: request.projectId, topic: request.topic, url });
  try {
    return await publisher.publishKill(request.target, { issuedAt: request.issuedAt });
  } finally {
    // Waits for the delivery, so the process does not exit before the kill function got it.
    await publisher.close();
  }
}

/**
 * The whole command: parses, publishes (to Pub/Sub, the emulator, or the push URL of a local
 * stack), prints the message id, and resolves with the exit code instead of exiting, so tests can
 * run it in-process.
 *
 * @example
 * process.exitCode = await main(['--guests', '--project', 'my-project'], process.env); // 0, and the message id on stdout
 */
export async function main(argv: string[], env: Record<string, string | undefined>): Promise<number> {
  let request: CliRequest | 'help';
  try {
    request = parseCli(argv, env);
  } catch (err) {
    if (err instanceof NoLauncherError) {
      process.stderr.write(`session-kill: --local: ${err.message}\n`);
      return 1;
    }
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`session-kill: ${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (request === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    // Local stacks without Pub/Sub (npm start on the memory store) take push requests directly.
    const local = request.local;
    // The client reads the emulator switch from the environment.
    if (local?.pubsubEmulatorHost) process.env.PUBSUB_EMULATOR_HOST = local.pubsubEmulatorHost;
    // A local stack is never on Google Cloud: without this, google-auth-library probes for a
    // metadata server (for the universe domain) and Node prints a MetadataLookupWarning when none answers.
    if (local) process.env.METADATA_SERVER_DETECTION = 'none';
    const pushUrl = local ? local.killPushUrl : env.SESSION_KILL_PUSH_URL?.trim();
    const messageId = pushUrl
      ? await publishViaPush(request, pushUrl)
      : await publishKill(request.target, { topic: request.topic, projectId: request.projectId, issuedAt: request.issuedAt });
    process.stdout.write(`${messageId}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(
      `session-kill: publishing to ${request.topic} in ${request.projectId} failed: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2), process.env).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`session-kill: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
