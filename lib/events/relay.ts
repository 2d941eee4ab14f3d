import type { Clock } from '../core/clock';
import type { EventSink, OutboxRecord } from '../core/events';
import { log } from '../setup/log';
import type { SessionStore } from '../store/sessionStore';
import type { EventPublisher } from './publisher';

/** What an EventRelay works with and how often it looks for what was left behind. */
export interface EventRelayOptions {
  /** The store whose outbox it publishes: it must implement pendingOutbox and deleteOutbox. */
  store: SessionStore;
  publisher: EventPublisher;
  clock: Clock;
  /** Least time between two relays that afterCommit starts on this instance; default 60 s. */
  relayIntervalMs?: number;
  /** A record younger than this is left to the request that wrote it (it is publishing it); default 30 s. */
  settleMs?: number;
  /** Most records one relay run publishes; default 1,000. */
  maxRecords?: number;
  /**
   * Tests only: called after a record's commit, before its publish (a crash there must lose
   * nothing). An option of the code, not a setting: no deployment can turn it on.
   */
  beforePublish?: (record: OutboxRecord) => void;
}

/** What one relay run did. */
export interface RelayReport {
  /** Outbox records published and deleted. */
  records: number;
  /** Events in them. */
  events: number;
  /** False when it stopped early: a publish or a delete failed, or maxRecords was reached. */
  done: boolean;
}

/** Records read per outbox query. */
const PAGE = 100;

/**
 * Publishes session events from the outbox (docs/events.md). afterCommit publishes a commit's own
 * record right after the commit and then deletes it; a failure there only leaves the record in the
 * outbox. relay() publishes whatever is left: started in the background by afterCommit at most once
 * per relayIntervalMs on an instance, and run by the cleanup. Delivery is at least once: a crash
 * between a publish and the record's delete, or two relays at once, publish an event twice, never
 * lose one; subscribers de-duplicate by the event id.
 *
 * @example
 * const relay = new EventRelay({ store, publisher: pubSubEventPublisher({ projectId, topic }), clock: systemClock });
 * const sessions = new SessionManager({ store, settings, clock, random, events: relay });
 * await relay.relay(); // { records: 0, events: 0, done: true }
 */
export class EventRelay implements EventSink {
  readonly #store: Required<Pick<SessionStore, 'pendingOutbox' | 'deleteOutbox'>>;
  readonly #publisher: EventPublisher;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #settleMs: number;
  readonly #maxRecords: number;
  readonly #beforePublish: ((record: OutboxRecord) => void) | undefined;
  #lastRelay = Number.NEGATIVE_INFINITY;
  #running: Promise<unknown> | undefined;

  /**
   * A relay on `options.store`'s outbox; throws when the store has none.
   *
   * @example
   * new EventRelay({ store: new MemorySessionStore(), publisher, clock: systemClock, relayIntervalMs: 10_000 });
   */
  constructor(options: EventRelayOptions) {
    const store = options.store;
    if (!store.pendingOutbox || !store.deleteOutbox)
      throw new Error('session events need a store with an outbox (pendingOutbox, deleteOutbox)');
    this.#store = {
      pendingOutbox: (before, limit) => store.pendingOutbox!(before, limit),
      deleteOutbox: (ids) => store.deleteOutbox!(ids),
    };
    this.#publisher = options.publisher;
    this.#clock = options.clock;
    this.#intervalMs = options.relayIntervalMs ?? 60_000;
    this.#settleMs = options.settleMs ?? 30_000;
    this.#maxRecords = options.maxRecords ?? 1000;
    this.#beforePublish = options.beforePublish;
  }

  /**
   * Publishes a just-committed record and deletes it from the outbox; never throws (what fails
   * stays in the outbox for a relay, and is logged). Then starts a background relay when none ran
   * on this instance for relayIntervalMs.
   *
   * @example
   * await relay.afterCommit(record);
   */
  async afterCommit(record: OutboxRecord): Promise<void> {
    try {
      this.#beforePublish?.(record);
      await this.#publish(record);
    } catch (err) {
      log('WARNING', 'session events left in the outbox for a relay', {
        record: record.id,
        events: record.events.length,
        error: message(err),
      });
    }
    this.#kick();
  }

  /**
   * Publishes outbox records older than settleMs, oldest first, deleting each once published, until
   * none is left, one fails, or maxRecords were published. Never throws: a failure is logged and
   * ends the run with `done: false`.
   *
   * @example
   * const { records, done } = await relay.relay();
   */
  async relay(): Promise<RelayReport> {
    this.#lastRelay = this.#clock.now();
    const report: RelayReport = { records: 0, events: 0, done: false };
    try {
      while (report.records < this.#maxRecords) {
        const limit = Math.min(PAGE, this.#maxRecords - report.records);
        const page = await this.#store.pendingOutbox(this.#clock.now() - this.#settleMs, limit);
        for (const record of page) {
          await this.#publish(record);
          report.records++;
          report.events += record.events.length;
        }
        if (page.length < limit) {
          report.done = true;
          break;
        }
      }
    } catch (err) {
      log('WARNING', 'session event relay stopped; the rest stays in the outbox', { ...report, error: message(err) });
      return report;
    }
    if (report.records > 0) log('INFO', 'session events relayed', { ...report });
    return report;
  }

  /**
   * Resolves when the background relay (if one runs) has finished: for tests and orderly shutdown.
   *
   * @example
   * await relay.idle();
   */
  async idle(): Promise<void> {
    await this.#running;
  }

  async #publish(record: OutboxRecord): Promise<void> {
    await this.#publisher.publish(record.events);
    await this.#store.deleteOutbox([record.id]);
  }

  /** At most one background relay at a time on an instance, and not more often than the interval. */
  #kick(): void {
    if (this.#running || this.#clock.now() - this.#lastRelay < this.#intervalMs) return;
    this.#lastRelay = this.#clock.now();
    this.#running = this.relay().finally(() => (this.#running = undefined));
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
