import type { BillingInterval, Metric, ResetPeriod } from "./catalog.ts";

/** A UTC calendar period: `start` inclusive, `end` exclusive. */
export type Period = {
  readonly start: Date;
  readonly end: Date;
};

/** Where a gauge keeps its single, never-resetting row. */
export const GAUGE_PERIOD_START = new Date(0);

/** The last period found of each kind: nearly every call falls in the one before it. */
const lastPeriods = new Map<ResetPeriod, Period>();

/** The period that contains `at`, or null for a gauge, which has none. */
export function periodContaining(resetPeriod: ResetPeriod, at: Date): Period | null {
  if (resetPeriod === "never") return null;
  const last = lastPeriods.get(resetPeriod);
  const time = at.getTime();
  if (last !== undefined && time >= last.start.getTime() && time < last.end.getTime()) return last;
  const period = calendarPeriod(resetPeriod, at);
  lastPeriods.set(resetPeriod, period);
  return period;
}

function calendarPeriod(resetPeriod: Exclude<ResetPeriod, "never">, at: Date): Period {
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
  }
}

/**
 * The period of a metric that contains `at`, or null for a gauge: calendar periods, or for a
 * monthly or yearly metric anchored on the subscription, the billing periods of the one that
 * started at `anchor` (calendar periods without one).
 */
export function usagePeriod(metric: Metric, at: Date, anchor: Date | null = null): Period | null {
  if (metric.resetAnchor === "subscription" && anchor !== null && (metric.resetPeriod === "month" || metric.resetPeriod === "year")) {
    return billingPeriodContaining(anchor, metric.resetPeriod, at);
  }
  return periodContaining(metric.resetPeriod, at);
}

/** The start of the stored row of a calendar metric with this reset that `at` counts into. */
export function usageRowStart(resetPeriod: ResetPeriod, at: Date): Date {
  return periodContaining(resetPeriod, at)?.start ?? GAUGE_PERIOD_START;
}

/** The usage row of a metric that `at` counts into (`anchor` as usagePeriod takes it). */
export function currentUsageRow(metric: Metric, at: Date, anchor: Date | null = null): { readonly metric: string; readonly periodStart: Date } {
  return { metric: metric.code, periodStart: usagePeriod(metric, at, anchor)?.start ?? GAUGE_PERIOD_START };
}

/** `startedAt` moved `months` on, its day of the month kept, or the month's last day when it has none. */
function monthsAfter(startedAt: Date, months: number): Date {
  const year = startedAt.getUTCFullYear();
  const month = startedAt.getUTCMonth() + months;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return new Date(
    Date.UTC(year, month, Math.min(startedAt.getUTCDate(), lastDay), startedAt.getUTCHours(), startedAt.getUTCMinutes(), startedAt.getUTCSeconds(), startedAt.getUTCMilliseconds()),
  );
}

/**
 * The billing period of a subscription that contains `at`: periods of `interval` anchored on
 * `startedAt`, so one started on the 31st renews on the last day of shorter months (and one
 * started on 29 February on the 28th in other years), always from the anchor, never drifting.
 */
export function billingPeriodContaining(startedAt: Date, interval: BillingInterval, at: Date): Period {
  const step = interval === "year" ? 12 : 1;
  const start = (n: number) => monthsAfter(startedAt, n * step);
  const monthsApart = (at.getUTCFullYear() - startedAt.getUTCFullYear()) * 12 + (at.getUTCMonth() - startedAt.getUTCMonth());
  let n = Math.max(0, Math.floor(monthsApart / step));
  while (n > 0 && start(n) > at) n--;
  while (start(n + 1) <= at) n++;
  return { start: start(n), end: start(n + 1) };
}
