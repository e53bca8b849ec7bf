import type { Metric, ResetPeriod } from "./catalog.ts";

/** A UTC calendar period: `start` inclusive, `end` exclusive. */
export type Period = {
  readonly start: Date;
  readonly end: Date;
};

/** Where a gauge keeps its single, never-resetting row. */
export const GAUGE_PERIOD_START = new Date(0);

/** The period that contains `at`, or null for a gauge, which has none. */
export function periodContaining(resetPeriod: ResetPeriod, at: Date): Period | null {
  const year = at.getUTCFullYear();
  const month = at.getUTCMonth();
  switch (resetPeriod) {
    case "day": {
      const day = at.getUTCDate();
      return { start: new Date(Date.UTC(year, month, day)), end: new Date(Date.UTC(year, month, day + 1)) };
    }
    case "week": {
      // getUTCDay() is 0 on Sunday: days since the last Monday.
      const monday = at.getUTCDate() - ((at.getUTCDay() + 6) % 7);
      return { start: new Date(Date.UTC(year, month, monday)), end: new Date(Date.UTC(year, month, monday + 7)) };
    }
    case "month":
      return { start: new Date(Date.UTC(year, month, 1)), end: new Date(Date.UTC(year, month + 1, 1)) };
    case "year":
      return { start: new Date(Date.UTC(year, 0, 1)), end: new Date(Date.UTC(year + 1, 0, 1)) };
    case "never":
      return null;
  }
}

/** The start of the stored usage row that `at` counts into. */
export function usageRowStart(resetPeriod: ResetPeriod, at: Date): Date {
  return periodContaining(resetPeriod, at)?.start ?? GAUGE_PERIOD_START;
}

/** The usage row of a metric that `at` counts into. */
export function currentUsageRow(metric: Metric, at: Date): { readonly metric: string; readonly periodStart: Date } {
  return { metric: metric.code, periodStart: usageRowStart(metric.resetPeriod, at) };
}
