import type { Clock } from '../../lib/core/clock';

/**
 * A clock the test moves. Its own module, without fixtures.ts's imports: the mutation run only loads
 * the test files that import the mutated module, and a test that needs only a clock should not count
 * as one that imports the session manager and the configuration.
 */
export class FakeClock implements Clock {
  constructor(public t = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
