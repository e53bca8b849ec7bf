import type { CommonQueryMethods } from "slonik";
import { countAccounts, findAccountStanding } from "../db/accounts.ts";
import { activeSubscriptionTotals } from "../db/subscriptions.ts";
import { recentUsageRows, sumUsageByMetric } from "../db/usage-counters.ts";
import type { Metric } from "../domain/catalog.ts";
import { currentUsageRow } from "../domain/periods.ts";
import { usageRowOf } from "../domain/quota.ts";
import type { Entitlements } from "./entitlements.ts";

export type PlatformStats = {
  readonly totalAccounts: bigint;
  readonly suspendedAccounts: bigint;
  readonly accountsByPlan: readonly { readonly planCode: string; readonly accounts: bigint }[];
  readonly monthlyRecurringRevenueCents: bigint;
  readonly usageThisPeriod: readonly { readonly metric: string; readonly total: bigint }[];
};

/** Standings read at once while summing the usage of metrics that follow the subscription. */
const STANDING_READS = 8;
/** The longest period (a year) started at most this long ago. */
const LONGEST_PERIOD_MS = 367 * 86_400_000;

/** The platform's accounts, plans, revenue and usage in each metric's current period, at `now`. */
export async function platformStats(db: CommonQueryMethods, entitlements: Entitlements, now: Date): Promise<PlatformStats> {
  const catalog = entitlements.catalog;
  const anchored = catalog.metrics.filter(followsSubscription);
  const [accounts, subscriptions, usage, anchoredUsage] = await Promise.all([
    countAccounts(db),
    activeSubscriptionTotals(db, now),
    sumUsageByMetric(
      db,
      catalog.metrics.filter((metric) => !followsSubscription(metric)).map((metric) => currentUsageRow(metric, now)),
    ),
    usageFollowingSubscriptions(db, entitlements, anchored, now),
  ]);
  const subscribed = new Map(subscriptions.map((row) => [row.plan_code, row.accounts]));
  // Accounts without an active subscription are on free, whatever rows they have.
  const onFree = accounts.total - subscriptions.reduce((sum, row) => sum + row.accounts, 0n);
  return {
    totalAccounts: accounts.total,
    suspendedAccounts: accounts.suspended,
    accountsByPlan: catalog.plans.map((plan) => ({
      planCode: plan.code,
      accounts: (subscribed.get(plan.code) ?? 0n) + (plan.code === catalog.defaultPlan.code ? onFree : 0n),
    })),
    monthlyRecurringRevenueCents: subscriptions.reduce((sum, row) => sum + row.revenue_cents, 0n),
    usageThisPeriod: catalog.metrics.map((metric) => ({ metric: metric.code, total: anchoredUsage.get(metric.code) ?? usage.get(metric.code) ?? 0n })),
  };
}

/** A metric whose periods start on each subscriber's billing day: every user's current period is their own. */
function followsSubscription(metric: Metric): boolean {
  return metric.resetAnchor === "subscription" && (metric.resetPeriod === "month" || metric.resetPeriod === "year");
}

/**
 * Usage of metrics that follow the subscription, in each user's current period as increments
 * decide it (the plan in force now anchors it; without a subscription, the calendar period).
 * Reads the standing of every user with usage in the last year: its cost grows with them.
 */
async function usageFollowingSubscriptions(
  db: CommonQueryMethods,
  entitlements: Entitlements,
  metrics: readonly Metric[],
  now: Date,
): Promise<ReadonlyMap<string, bigint>> {
  const totals = new Map(metrics.map((metric) => [metric.code, 0n]));
  if (metrics.length === 0) return totals;
  const rowsByUser = await recentUsageRows(db, metrics.map((metric) => metric.code), new Date(now.getTime() - LONGEST_PERIOD_MS));
  const users = [...rowsByUser.keys()];
  for (let i = 0; i < users.length; i += STANDING_READS) {
    await Promise.all(
      users.slice(i, i + STANDING_READS).map(async (userId) => {
        const current = await entitlements.planOf(userId, await findAccountStanding(db, userId, now), now, db);
        for (const metric of metrics) {
          const { periodStart } = usageRowOf(metric, current, now);
          for (const row of rowsByUser.get(userId) ?? []) {
            if (row.metric === metric.code && row.periodStart.getTime() === periodStart.getTime()) totals.set(metric.code, totals.get(metric.code)! + row.used);
          }
        }
      }),
    );
  }
  return totals;
}
