import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CatalogSchema, ResetAnchor, type Catalog, type CatalogChange, CatalogChangeSchema, type PlanVersion, PlanVersionSchema } from "../../gen/entitlements/v1/catalog_pb.js";
import { BillingInterval, ResetPeriod } from "../../gen/entitlements/v1/plan_pb.js";
import { catalogOfDocument, InvalidCatalogError } from "../app/catalog-file.ts";
import type { CatalogView, PlanVersionView } from "../app/catalog-administration.ts";
import { alertThresholdsOf, type CatalogDefinition, type ResetPeriod as DomainResetPeriod } from "../domain/catalog.ts";
import { InvalidArgumentError } from "../domain/errors.ts";
import { planMessage } from "./messages.ts";

const RESET_NAMES: Record<ResetPeriod, DomainResetPeriod | undefined> = {
  [ResetPeriod.UNSPECIFIED]: undefined,
  [ResetPeriod.DAY]: "day",
  [ResetPeriod.WEEK]: "week",
  [ResetPeriod.MONTH]: "month",
  [ResetPeriod.YEAR]: "year",
  [ResetPeriod.NEVER]: "never",
};
const RESET_PERIODS = Object.fromEntries(Object.entries(RESET_NAMES).map(([period, name]) => [name, Number(period)])) as Record<DomainResetPeriod, ResetPeriod>;

export function catalogMessage(view: CatalogView): Catalog {
  return create(CatalogSchema, {
    defaultPlan: view.defaultPlan,
    metrics: view.metrics.map((metric) => ({
      code: metric.code,
      reset: RESET_PERIODS[metric.resetPeriod],
      description: metric.description,
      resetAnchor: metric.resetAnchor === "subscription" ? ResetAnchor.SUBSCRIPTION : ResetAnchor.CALENDAR,
      alertThresholds: [...alertThresholdsOf(metric)],
    })),
    features: view.features.map((feature) => ({ code: feature.code, description: feature.description })),
    plans: view.plans.map(({ plan, archived }) => ({ plan: planMessage(plan), archived })),
  });
}

export function planVersionMessage(view: PlanVersionView): PlanVersion {
  return create(PlanVersionSchema, { plan: planMessage(view.plan), publishedAt: timestampFromDate(view.publishedAt), activeSubscribers: view.activeSubscribers });
}

/** `plans.pro: new version (...)` as a CatalogChange: the path, and how it changes. */
export function catalogChangeMessage(line: string): CatalogChange {
  const colon = line.indexOf(": ");
  return create(CatalogChangeSchema, { path: line.slice(0, colon), change: line.slice(colon + 2) });
}

/** Codes a repeated field lists more than once: a file's map could not. */
function duplicates(section: string, codes: readonly string[]): { field: string; description: string }[] {
  return codes.filter((code, index) => codes.indexOf(code) !== index).map((code) => ({ field: `${section}.${code}`, description: "listed twice" }));
}

/**
 * The catalog an ApplyCatalog request declares, validated as a catalog file is: an invalid one
 * is invalid_argument whose field violations carry the CLI's paths (`plans.pro.quotas.jbos`).
 */
export function catalogOfMessage(message: Catalog): CatalogDefinition {
  const plans = message.plans.flatMap((entry) => (entry.plan === undefined ? [] : [entry.plan]));
  const repeated = [
    ...duplicates("metrics", message.metrics.map((metric) => metric.code)),
    ...duplicates("features", message.features.map((feature) => feature.code)),
    ...duplicates("plans", plans.map((plan) => plan.code)),
  ];
  if (repeated.length > 0) throw new InvalidArgumentError(repeated);
  const document = {
    default_plan: message.defaultPlan,
    metrics: Object.fromEntries(
      message.metrics.map((metric) => [
        metric.code,
        {
          reset: RESET_NAMES[metric.reset],
          ...(metric.resetAnchor === ResetAnchor.SUBSCRIPTION ? { reset_anchor: "subscription" } : {}),
          description: metric.description,
          ...(metric.alertThresholds.length === 0 ? {} : { alert_thresholds: metric.alertThresholds }),
        },
      ]),
    ),
    features: Object.fromEntries(message.features.map((feature) => [feature.code, { description: feature.description }])),
    plans: Object.fromEntries(
      plans.map((plan) => [
        plan.code,
        {
          display_name: plan.displayName,
          price_cents: Number(plan.priceCents),
          currency: plan.currency,
          interval: plan.interval === BillingInterval.YEAR ? "year" : plan.interval === BillingInterval.MONTH ? "month" : undefined,
          rate_limit_multiplier: plan.rateLimitMultiplier,
          visibility: plan.hidden ? "hidden" : "public",
          ...(plan.trialDays === undefined ? {} : { trial_days: plan.trialDays }),
          features: Object.keys(plan.features).filter((feature) => plan.features[feature]),
          quotas: Object.fromEntries(plan.quotas.map((quota) => [quota.metric, quota.limit === undefined ? "unlimited" : Number(quota.limit)])),
        },
      ]),
    ),
  };
  try {
    return catalogOfDocument(document, "catalog");
  } catch (error) {
    if (!(error instanceof InvalidCatalogError)) throw error;
    throw new InvalidArgumentError(error.problems.map((problem) => ({ field: problem.path === "" ? "catalog" : problem.path, description: problem.message })));
  }
}
