/**
 * The child process of eventOutbox.test.ts, on the compiled library (dist/), the emulators and a
 * namespace and topic the test names: `node eventCrashChild.js <step> <crashAt> <namespace> <topic>`.
 * It runs one step of the scenario with session events on, and SIGKILLs itself right after the
 * commit of its crashAt-th outbox record, before that record is published, first printing the
 * record (one JSON line) so that the test knows which events were orphaned. crashAt 0: no crash.
 * The crash point is the relay's `beforePublish` option: code, not a setting a deployment could set.
 */
const { writeSync } = require('node:fs');
const dist = (path) => require(`../../dist/lib/${path}`);
const { loadConfig } = dist('setup/config');
const { createRuntime, createStore } = dist('setup/runtime');
const { EventRelay } = dist('events/relay');
const { pubSubEventPublisher } = dist('events/publisher');
const { processKillMessage } = dist('jobs/kill');
const { runCleanup } = dist('jobs/cleanup');
const { systemClock } = dist('core/clock');

const [step, crashAt, namespace, topic] = process.argv.slice(2);

async function main() {
  const config = loadConfig({
    ...process.env,
    SESSION_NAMESPACE: namespace,
    SESSION_EVENTS_TOPIC: topic,
    SESSION_DELETE_BATCH_SIZE: '10',
    SESSION_DELETE_PARALLELISM: '1',
  });
  const store = createStore(config);
  let records = 0;
  const events = new EventRelay({
    store,
    publisher: pubSubEventPublisher({ projectId: config.projectId, topic }),
    clock: systemClock,
    // The restart publishes at once whatever the crashed runs left; the crashing steps leave the
    // outbox to it (the default: records younger than 30 s are not relayed).
    ...(crashAt === '0' ? { settleMs: 0 } : {}),
    beforePublish: (record) => {
      if (++records !== Number(crashAt)) return;
      writeSync(1, JSON.stringify({ orphaned: record }) + '\n');
      process.kill(process.pid, 'SIGKILL');
    },
  });
  const rt = createRuntime(config, { store, events });
  if (step === 'login') {
    await rt.sessions.withSession(undefined, (s) => s.login('alice'));
  } else if (step === 'login-then-kill') {
    await rt.sessions.withSession(undefined, (s) => s.login('alice'));
    await processKillMessage(
      rt,
      { kind: 'kill', user: 'alice', issuedAt: undefined, continuation: 0 },
      { messageId: 'm', publishTime: Date.now() },
    );
  } else if (step === 'cleanup') {
    await runCleanup(rt, 60);
  } else {
    throw new Error(`unknown step ${step}`);
  }
  await events.idle();
  writeSync(1, JSON.stringify({ done: step, pending: (await store.pendingOutbox(Date.now() + 1, 10)).length }) + '\n');
  process.exit(0);
}

main().catch((err) => {
  writeSync(2, String(err && err.stack) + '\n');
  process.exit(1);
});
