import type { SessionEvent } from '../core/events';
import { lazyTopic } from '../jobs/killPublisher';

/** Where session events go: SESSION_EVENTS_TOPIC in the project. */
export interface EventDestination {
  projectId: string;
  topic: string;
}

/** Publishes session events, one Pub/Sub message each (docs/events.md). */
export interface EventPublisher {
  /** Resolves once Pub/Sub accepted every one of `events`; rejects when any was not (then all may be sent again). */
  publish(events: readonly SessionEvent[]): Promise<void>;
  /** Flushes and releases the client. */
  close(): Promise<void>;
}

/**
 * The Pub/Sub message of one event: the event as its JSON body, and its id, type and (for `ended`)
 * reason as attributes, so that a subscription can filter (`attributes.type = "login"`) and a
 * subscriber de-duplicate without parsing the body.
 *
 * @example
 * eventMessage(event); // { data: Buffer('{"id":"…","type":"ended",…}'), attributes: { eventId: '…', type: 'ended', reason: 'kill' } }
 */
export function eventMessage(event: SessionEvent): { data: Buffer; attributes: Record<string, string> } {
  const attributes: Record<string, string> = { eventId: event.id, type: event.type };
  if (event.reason !== undefined) attributes.reason = event.reason;
  return { data: Buffer.from(JSON.stringify(event), 'utf8'), attributes };
}

/**
 * A publisher of session events on Cloud Pub/Sub; the client is created on the first publish
 * (PUBSUB_EMULATOR_HOST is honoured by the client itself). Keep it for the life of the process.
 *
 * @example
 * const publisher = pubSubEventPublisher({ projectId: 'my-project', topic: 'session-events' });
 * await publisher.publish(record.events);
 */
export function pubSubEventPublisher(destination: EventDestination): EventPublisher {
  const client = lazyTopic(destination);
  return {
    async publish(events) {
      if (events.length === 0) return;
      const topic = await client.topic();
      // All at once: the client batches them into few requests.
      await Promise.all(events.map((e) => topic.publishMessage(eventMessage(e))));
    },
    close: client.close,
  };
}
