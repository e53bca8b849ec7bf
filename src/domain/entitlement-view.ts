import type { Plan } from "./catalog.ts";
import type { ScheduledChange, SubscriptionRecord } from "./subscriptions.ts";
import { featureEntitlement, inForce, quotaEntitlement, type AccountTerms, type EntitlementSource } from "./terms.ts";

/** The plan a user is on at one instant, and what decides it; the shape of a current plan. */
export type PlanStanding = {
  readonly plan: Plan;
  readonly subscription: SubscriptionRecord | undefined;
  readonly suspended: boolean;
  readonly scheduledChange: ScheduledChange | undefined;
  readonly terms: AccountTerms;
};

export type FeatureView = { readonly feature: string; readonly enabled: boolean; readonly source: EntitlementSource };
export type LimitView = { readonly metric: string; readonly limit: bigint | null; readonly source: EntitlementSource };

/**
 * What a user is entitled to at one instant, as the change feed tells it: the plan and what
 * decides it, every feature the plan or an override names, every limit of the plan or an
 * override. `validUntil` is the first instant at which it stops holding by itself (a trial or an
 * override ends, a scheduled change comes due): who answers from it must ask again from then on.
 */
export type EntitlementView = {
  readonly planCode: string;
  readonly planVersion: number;
  readonly subscription: SubscriptionRecord | null;
  readonly suspended: boolean;
  readonly scheduledChange: ScheduledChange | null;
  readonly features: readonly FeatureView[];
  readonly limits: readonly LimitView[];
  readonly validUntil: Date | null;
};

function earliest(dates: Iterable<Date | null | undefined>, after: Date): Date | null {
  let first: Date | null = null;
  for (const date of dates) {
    if (date != null && date.getTime() > after.getTime() && (first === null || date.getTime() < first.getTime())) first = date;
  }
  return first;
}

/** The view of `current` at `at`, features and limits in code order. */
export function entitlementView(current: PlanStanding, at: Date): EntitlementView {
  const { plan, terms } = current;
  const overrides = terms.overrides.filter((override) => inForce(override.expiresAt, at));
  const featureCodes = new Set(Object.keys(plan.features));
  const metricCodes = new Set(plan.quotas.map((quota) => quota.metric));
  for (const override of overrides) (override.kind === "feature" ? featureCodes : metricCodes).add(override.target);
  const features = [...featureCodes].sort().map((feature) => ({ feature, ...featureEntitlement(plan, terms, feature, at) }));
  const limits = [...metricCodes].sort().map((metric) => ({ metric, ...quotaEntitlement(plan, terms, metric, at) }));
  const subscription = current.subscription ?? null;
  const validUntil = earliest(
    [subscription?.expiresAt, subscription?.trialEndsAt, current.scheduledChange?.effectiveAt, ...overrides.map((override) => override.expiresAt)],
    at,
  );
  return {
    planCode: plan.code,
    planVersion: plan.version,
    subscription,
    suspended: current.suspended,
    scheduledChange: current.scheduledChange ?? null,
    features,
    limits,
    validUntil,
  };
}
