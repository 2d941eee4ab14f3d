/** Injected time source in milliseconds since the epoch; tests drive expiry with a fake one. */
export interface Clock {
  now(): number;
}

/**
 * The real clock (`Date.now()`): what createRuntime() uses unless a test passes its own Clock.
 *
 * @example
 * const manager = new SessionManager({ store: new MemorySessionStore(), settings, clock: systemClock, random: cryptoRandom });
 */
export const systemClock: Clock = { now: () => Date.now() };
