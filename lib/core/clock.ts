/** Injected time source in milliseconds since the epoch; tests drive expiry with a fake one. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
