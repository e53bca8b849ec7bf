/** The source of the current time. Injected everywhere so period rollovers are testable. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
