/**
 * `npm run smoke -- <api_url> [--token T] [--cleanup-url URL] [--cleanup-token T] [--timeout S]`:
 * after an apply (or against `npm start -- --emulators`), checks that the deployment works end to
 * end, one line per step, exit code 1 when a step failed (docs/deploy.md#smoke-test):
 *
 * 1. health: `GET /healthz` answers 200;
 * 2. a session round trip: a key, a `PUT` of a value, a `GET /session` that returns it;
 * 3. a kill through the topic (with a privileged ID token: `--token` or SMOKE_ID_TOKEN): a login of
 *    a fresh user `smoke-<random>`, `POST /sessions/kill`, then the session is gone once the kill
 *    function has processed the message (Pub/Sub → push → killSessionByUser → Datastore);
 * 4. the cleanup answering (`--cleanup-url`): 200 with its report, or, without a token a deployed
 *    cleanup refuses (401/403 from Cloud Run, which proves it is there and private).
 *
 * It leaves nothing behind: the guest session logs out, the smoke user's session is killed.
 */
import { randomBytes } from 'node:crypto';

interface SmokeOptions {
  apiUrl: string;
  token: string | undefined;
  cleanupUrl: string | undefined;
  cleanupToken: string | undefined;
  timeoutSeconds: number;
}

export const SMOKE_USAGE =
  'usage: npm run smoke -- <api_url> [--token <ID token of an admin principal>] [--cleanup-url <url>] [--cleanup-token <ID token>] [--timeout <seconds>]';

class StepError extends Error {}

/**
 * Parses the command line; throws a StepError with the usage on a mistake.
 *
 * @example
 * parseSmokeOptions(['https://session-api-xyz.a.run.app', '--token', t], {});
 */
export function parseSmokeOptions(argv: string[], env: NodeJS.ProcessEnv): SmokeOptions {
  const options: SmokeOptions = {
    apiUrl: '',
    token: env.SMOKE_ID_TOKEN || undefined,
    cleanupUrl: undefined,
    cleanupToken: undefined,
    timeoutSeconds: 120,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new StepError(`${arg} needs a value\n${SMOKE_USAGE}`);
      return v;
    };
    if (arg === '--token') options.token = value();
    else if (arg === '--cleanup-url') options.cleanupUrl = value();
    else if (arg === '--cleanup-token') options.cleanupToken = value();
    else if (arg === '--timeout') options.timeoutSeconds = Number(value());
    else if (arg.startsWith('--')) throw new StepError(`unknown option ${arg}\n${SMOKE_USAGE}`);
    else if (options.apiUrl === '') options.apiUrl = arg.replace(/\/+$/, '');
    else throw new StepError(`one API URL only\n${SMOKE_USAGE}`);
  }
  if (!/^https?:\/\/[^/]+/.test(options.apiUrl)) throw new StepError(`the API URL is missing or not http(s)\n${SMOKE_USAGE}`);
  if (!Number.isFinite(options.timeoutSeconds) || options.timeoutSeconds <= 0)
    throw new StepError(`--timeout must be seconds\n${SMOKE_USAGE}`);
  return options;
}

interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON: kept as text for the message
  }
  return { status: res.status, body, headers: res.headers };
}

function expectStatus(what: string, answer: Answer, status: number): void {
  if (answer.status !== status) throw new StepError(`${what}: expected ${status}, got ${answer.status} ${JSON.stringify(answer.body)}`);
}

function cookieOf(answer: Answer, what: string): string {
  const header = answer.headers.getSetCookie()[0];
  if (!header) throw new StepError(`${what}: no Set-Cookie in the answer`);
  return header.split(';')[0] ?? header;
}

const field = (body: unknown, name: string): unknown =>
  typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;

type Step = { name: string; run: () => Promise<string> };

/**
 * Runs the steps; each prints `ok`, `FAIL` or `skip` with one line of detail. Resolves with the
 * number of failed steps.
 *
 * @example
 * const failed = await runSmoke(parseSmokeOptions(process.argv.slice(2), process.env), console.log);
 */
export async function runSmoke(options: SmokeOptions, print: (line: string) => void): Promise<number> {
  const api = options.apiUrl;
  const json = { 'content-type': 'application/json' };
  const steps: Step[] = [
    {
      name: 'health',
      run: async () => {
        const answer = await call(`${api}/healthz`);
        expectStatus('GET /healthz', answer, 200);
        return 'GET /healthz answered 200';
      },
    },
    {
      name: 'session round trip',
      run: async () => {
        const keyAnswer = await call(`${api}/session/security-key`);
        expectStatus('GET /session/security-key', keyAnswer, 200);
        const cookie = cookieOf(keyAnswer, 'GET /session/security-key');
        const value = `smoke-${randomBytes(6).toString('hex')}`;
        const put = await call(`${api}/session/data/smoke`, {
          method: 'PUT',
          headers: { ...json, cookie, 'x-security-key': String(field(keyAnswer.body, 'securityKey')) },
          body: JSON.stringify(value),
        });
        expectStatus('PUT /session/data/smoke', put, 200);
        const read = await call(`${api}/session`, { headers: { cookie } });
        expectStatus('GET /session', read, 200);
        if (field(field(read.body, 'data'), 'smoke') !== value)
          throw new StepError(`GET /session did not return the value written: ${JSON.stringify(read.body)}`);
        const logout = await call(`${api}/session/logout`, {
          method: 'POST',
          headers: { cookie, 'x-security-key': String(put.headers.get('x-security-key')) },
        });
        if (logout.status >= 300) throw new StepError(`POST /session/logout: ${logout.status} ${JSON.stringify(logout.body)}`);
        return 'a value written to a new session was read back through the store; the session logged out';
      },
    },
    {
      name: 'kill through the topic',
      run: async () => {
        if (!options.token) return 'skip: no --token (an ID token of an admin principal, for the admin audience)';
        const auth = { authorization: `Bearer ${options.token}` };
        const user = `smoke-${randomBytes(8).toString('hex')}`;
        const login = await call(`${api}/session/login`, { method: 'POST', headers: { ...json, ...auth }, body: JSON.stringify({ user }) });
        expectStatus('POST /session/login', login, 200);
        const cookie = cookieOf(login, 'POST /session/login');
        const before = await call(`${api}/session`, { headers: { cookie } });
        if (field(before.body, 'user') !== user)
          throw new StepError(`the logged-in session is not bound to ${user}: ${JSON.stringify(before.body)}`);
        const started = Date.now();
        const kill = await call(`${api}/sessions/kill`, { method: 'POST', headers: { ...json, ...auth }, body: JSON.stringify({ user }) });
        expectStatus('POST /sessions/kill', kill, 202);
        for (;;) {
          const now = await call(`${api}/session`, { headers: { cookie } });
          if (now.status === 200 && field(now.body, 'user') === null)
            return `the kill (message ${String(field(kill.body, 'messageId'))}) ended the session after ${((Date.now() - started) / 1000).toFixed(1)} s`;
          if (Date.now() - started > options.timeoutSeconds * 1000)
            throw new StepError(`the session of ${user} was still alive ${options.timeoutSeconds} s after the kill was published`);
          await new Promise((r) => setTimeout(r, 500));
        }
      },
    },
    {
      name: 'cleanup answering',
      run: async () => {
        if (!options.cleanupUrl) return "skip: no --cleanup-url (terraform output function_names; the URL is the cleanup function's)";
        const headers: Record<string, string> = {
          ...json,
          ...(options.cleanupToken ? { authorization: `Bearer ${options.cleanupToken}` } : {}),
        };
        const answer = await call(options.cleanupUrl, { method: 'POST', headers, body: '{}' });
        if (answer.status === 200) {
          if (typeof field(answer.body, 'done') !== 'boolean')
            throw new StepError(`the cleanup answered 200 without a report: ${JSON.stringify(answer.body)}`);
          return `the cleanup ran: ${JSON.stringify(answer.body)}`;
        }
        if (!options.cleanupToken && (answer.status === 401 || answer.status === 403))
          return `the cleanup is deployed and refuses an unauthenticated caller (${answer.status}), as it must`;
        throw new StepError(`the cleanup answered ${answer.status} ${JSON.stringify(answer.body)}`);
      },
    },
  ];
  let failed = 0;
  for (const step of steps) {
    try {
      const detail = await step.run();
      print(detail.startsWith('skip: ') ? `skip  ${step.name}: ${detail.slice(6)}` : `ok    ${step.name}: ${detail}`);
    } catch (err) {
      failed++;
      print(`FAIL  ${step.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  print(failed === 0 ? 'smoke test passed' : `smoke test failed: ${failed} step(s)`);
  return failed;
}

async function main(): Promise<void> {
  let options: SmokeOptions;
  try {
    options = parseSmokeOptions(process.argv.slice(2), process.env);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(2);
  }
  const failed = await runSmoke(options, (line) => console.log(line));
  process.exit(failed === 0 ? 0 : 1);
}

if (require.main === module) void main();
