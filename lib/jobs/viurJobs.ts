import { type BatchDeleteReport, batchDelete, type KeyDeleter } from './batchDelete';
import { isoTime } from './killMessage';
import { publisherFor } from './killPublisher';
import { MAX_CONTINUATIONS, MAX_COMMIT_MUTATIONS } from '../core/limits';
import { credentialsGate } from '../setup/credentials';
import type { Config } from '../setup/config';
import { log, type LogFields } from '../setup/log';
import type { Runtime } from '../setup/runtime';
import type { StorageKey } from '../store/sessionStore';
import { MAX_RESWEEP_KEYS, MAX_RESWEEP_KEYS_PER_RUN } from '../viur/jobLimits';
import type { ViurJobStore, ViurSessionSelector } from '../viur/jobStore';
import { viurUser } from '../viur/userKey';

/**
 * Kill and cleanup in `viur` format: on the entities a ViUR 3.8 app stores, through the one
 * batch-deletion engine. How they behave and why: docs/viur-kill-cleanup.md.
 */

const stores = new Map<string, ViurJobStore>();

/**
 * The job store the configuration names, kept for the life of the process (one Datastore client).
 * The Datastore client is loaded here, on first use. The viur format lives in Datastore only.
 *
 * @example
 * const jobs = viurJobStoreFor(runtime().config);
 */
export function viurJobStoreFor(config: Pick<Config, 'store' | 'projectId' | 'databaseId' | 'kind' | 'namespace'>): ViurJobStore {
  if (config.store !== 'datastore') throw new Error('SESSION_FORMAT=viur works on Datastore only (SESSION_STORE=datastore)');
  const id = JSON.stringify([config.projectId, config.databaseId ?? null, config.kind, config.namespace ?? null]);
  let jobs = stores.get(id);
  if (!jobs) {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const { Datastore } = require('@google-cloud/datastore') as typeof import('@google-cloud/datastore');
    const { ViurJobStore: Store } = require('../viur/jobStore') as typeof import('../viur/jobStore');
    /* eslint-enable @typescript-eslint/no-require-imports */
    const datastore = new Datastore({ projectId: config.projectId, databaseId: config.databaseId });
    jobs = new Store({ datastore, kind: config.kind, namespace: config.namespace, ready: credentialsGate(datastore) });
    stores.set(id, jobs);
  }
  return jobs;
}

/** The engine's options every viur-format run shares. */
function engine(rt: Runtime, budgetSeconds: number) {
  const { config, clock } = rt;
  return {
    batchSize: config.deletion.batchSize,
    parallelism: config.deletion.parallelism,
    deadline: clock.now() + budgetSeconds * 1000,
    clock,
  };
}

/** What a viur-format cleanup pass did; `deleted` counts sessions and one-time keys. */
export interface ViurCleanupReport extends BatchDeleteReport {
  /** Sessions last seen before this time were deleted (now − lifetime − grace). */
  expiredBefore: string;
}

/**
 * One viur-format cleanup pass within `budgetSeconds`: first the sessions ViUR's own
 * `start_clear_sessions` deletes (`lastseen` < now − (lifetime + grace), grace 300 s by default as
 * in ViUR), then the one-time keys `periodic_clear_skeys` deletes (`viur_until` < now − grace).
 * `done` is true when both are exhausted; otherwise the caller continues as for native.
 *
 * @example
 * const report = await runViurCleanup(rt, 1200); // { deleted: 20000, batches: 40, done: true, … }
 */
export async function runViurCleanup(
  rt: Runtime,
  budgetSeconds: number,
  context: LogFields = {},
  jobs: ViurJobStore = viurJobStoreFor(rt.config),
): Promise<ViurCleanupReport> {
  const { config, clock } = rt;
  const now = clock.now();
  const grace = config.deletion.cleanupGraceSeconds;
  const lastseenBefore = now / 1000 - (config.session.lifetimeSeconds + grace);
  const expiredBefore = new Date(lastseenBefore * 1000).toISOString();
  const options = engine(rt, budgetSeconds);
  log('INFO', 'cleanup started', { ...context, format: 'viur', expiredBefore, budgetSeconds });
  const onBatch = (what: string) => (p: { deleted: number; batches: number; elapsedMs: number }) =>
    log('INFO', 'cleanup progress', { ...context, what, deleted: p.deleted, batches: p.batches, elapsedMs: p.elapsedMs });
  const sessions = await batchDelete({
    ...options,
    store: jobs.sessions(),
    selector: { kind: 'stale', lastseenBefore },
    onBatch: onBatch('sessions'),
  });
  let keys: BatchDeleteReport = { deleted: 0, batches: 0, done: false, elapsedMs: 0 };
  if (sessions.done && clock.now() < options.deadline) {
    keys = await batchDelete({
      ...options,
      store: jobs.securityKeys(),
      selector: { kind: 'expiredKeys', before: now - grace * 1000 },
      onBatch: onBatch('securityKeys'),
    });
  }
  const report = {
    deleted: sessions.deleted + keys.deleted,
    batches: sessions.batches + keys.batches,
    done: sessions.done && keys.done,
    elapsedMs: clock.now() - now,
    expiredBefore,
  };
  log('INFO', report.done ? 'cleanup finished' : 'cleanup budget spent', {
    ...context,
    ...report,
    sessionsDeleted: sessions.deleted,
    securityKeysDeleted: keys.deleted,
  });
  return report;
}

/**
 * One viur-format kill run: deletes the sessions whose stored `user` is `target` converted with
 * viurUser (a key path becomes ViUR's string for this project and namespace; null: every session),
 * and their bound one-time keys. Every deleted key is remembered (at most MAX_RESWEEP_KEYS_PER_RUN;
 * then the run stops early and reports not done, so the caller continues in a follow-up message)
 * and handed to a resweep message, also when the run fails half-way. There is no `issuedAt`
 * cut-off: ViUR stores no creation time. Throws KeyPathError for a key path that does not convert.
 *
 * @example
 * const report = await runViurKill(rt, 'user/alice', { messageId: 'm-1' });
 * if (!report.done) await continueKill();
 */
export async function runViurKill(
  rt: Runtime,
  target: string | null,
  context: LogFields,
  jobs: ViurJobStore = viurJobStoreFor(rt.config),
): Promise<BatchDeleteReport> {
  const { config } = rt;
  const user = viurUser(target, { projectId: config.projectId, namespace: config.namespace });
  const sessions = jobs.sessions({ withSecurityKeys: true });
  const killed: StorageKey[] = [];
  let found = 0;
  let full = false;
  const store: KeyDeleter<ViurSessionSelector> = {
    findKeys: async (selector, limit, cursor) => {
      if (found >= MAX_RESWEEP_KEYS_PER_RUN) {
        // Enough remembered for one run: stop here, the follow-up message carries on.
        full = true;
        return { keys: [] };
      }
      const page = await sessions.findKeys(selector, limit, cursor);
      found += page.keys.length;
      return page;
    },
    deleteMany: async (keys) => {
      await sessions.deleteMany(keys);
      killed.push(...keys);
    },
  };
  let report: BatchDeleteReport;
  try {
    report = await batchDelete({
      ...engine(rt, config.deletion.killBudgetSeconds),
      store,
      selector: { kind: 'user', user },
      onBatch: (p) => log('INFO', 'kill progress', { ...context, deleted: p.deleted, batches: p.batches, elapsedMs: p.elapsedMs }),
    });
  } finally {
    // Also after a failure: the keys deleted so far will not be found by the redelivered kill.
    await scheduleResweep(rt, killed, 0, context);
  }
  return full ? { ...report, done: false } : report;
}

/**
 * Publishes resweep messages for `keys` (at most MAX_RESWEEP_KEYS each) due
 * SESSION_VIUR_RESWEEP_SECONDS from now.
 */
async function scheduleResweep(rt: Runtime, keys: StorageKey[], round: number, context: LogFields): Promise<void> {
  if (keys.length === 0) return;
  const at = isoTime(new Date(rt.clock.now() + rt.config.deletion.viurResweepSeconds * 1000));
  const publisher = publisherFor(rt.config);
  for (let i = 0; i < keys.length; i += MAX_RESWEEP_KEYS) {
    const chunk = keys.slice(i, i + MAX_RESWEEP_KEYS);
    const resweepMessageId = await publisher.publish({ resweep: { keys: chunk, at, ...(round > 0 ? { continuation: round } : {}) } });
    log('INFO', 'resweep scheduled', { ...context, resweepMessageId, keys: chunk.length, at });
  }
}

/**
 * A resweep message: waits until `at` (at most the kill budget in this invocation; a later `at`
 * is passed on in a follow-up message), then deletes those of `keys` that exist again, with their
 * one-time keys. Any found means a ViUR request wrote a killed session back, and a request that
 * loaded it since may write it again: those keys get another resweep, until one finds none.
 *
 * @example
 * await processResweep(rt, { kind: 'resweep', keys, at: new Date(), continuation: 0 }, { messageId: 'm-2' });
 */
export async function processResweep(
  rt: Runtime,
  message: { keys: string[]; at: Date; continuation: number },
  context: LogFields,
  options: { jobs?: ViurJobStore; sleep?: (ms: number) => Promise<void> } = {},
): Promise<void> {
  const { config, clock } = rt;
  const jobs = options.jobs ?? viurJobStoreFor(config);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const at = message.at.getTime();
  const wait = at - clock.now();
  if (wait > 0) await sleep(Math.min(wait, config.deletion.killBudgetSeconds * 1000));
  const next = message.continuation + 1;
  if (clock.now() < at) {
    if (next > MAX_CONTINUATIONS) {
      log('ERROR', 'continuation limit reached; the rest is left to the next run', { ...context, continuations: message.continuation });
      return;
    }
    const continuationMessageId = await publisherFor(config).publish({
      resweep: { keys: message.keys, at: isoTime(message.at), continuation: next },
    });
    log('INFO', 'work continues in a follow-up message', { ...context, continuationMessageId, continuation: next });
    return;
  }
  const back = await jobs.existing(message.keys);
  const sessions = jobs.sessions({ withSecurityKeys: true });
  for (let i = 0; i < back.length; i += MAX_COMMIT_MUTATIONS) await sessions.deleteMany(back.slice(i, i + MAX_COMMIT_MUTATIONS));
  log(back.length > 0 ? 'WARNING' : 'INFO', 'resweep finished', { ...context, keys: message.keys.length, writtenBack: back.length });
  if (back.length > 0) {
    if (next > MAX_CONTINUATIONS) {
      log('ERROR', 'continuation limit reached; the rest is left to the next run', { ...context, continuations: message.continuation });
      return;
    }
    await scheduleResweep(rt, back, next, context);
  }
}
