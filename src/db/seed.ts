import type { DatabasePool } from "slonik";
import type { Metric, Plan } from "../domain/catalog.ts";
import { upsertMetric } from "./catalog-metrics.ts";
import { notifyCatalogChanged } from "./notifications.ts";
import { replacePlanFeatures } from "./plan-features.ts";
import { replacePlanQuotas } from "./plan-quotas.ts";
import { upsertPlan } from "./plans.ts";

export const DEFAULT_METRICS: readonly Metric[] = [
  { code: "api_calls", resetPeriod: "day", description: "API calls per UTC day" },
  { code: "compute_minutes", resetPeriod: "month", description: "Compute minutes per UTC month" },
  { code: "jobs", resetPeriod: "month", description: "Jobs run per UTC month" },
  { code: "storage_mb", resetPeriod: "never", description: "Storage in use, in MB" },
];

const FEATURES = [
  "api_access",
  "priority_support",
  "webhooks",
  "advanced_analytics",
  "custom_domains",
  "sso",
  "audit_log",
] as const;

function featureFlags(enabled: readonly (typeof FEATURES)[number][]): Record<string, boolean> {
  return Object.fromEntries(FEATURES.map((feature) => [feature, enabled.includes(feature)]));
}

function quotas(limits: Record<string, bigint | null>): Plan["quotas"] {
  return DEFAULT_METRICS.map((metric) => {
    const limit = limits[metric.code];
    if (limit === undefined) {
      throw new Error(`no limit given for metric ${metric.code}`);
    }
    return { metric: metric.code, limit, resetPeriod: metric.resetPeriod };
  });
}

/** The catalog of the system we replace. */
export const DEFAULT_PLANS: readonly Plan[] = [
  {
    code: "free",
    displayName: "Free",
    priceCents: 0n,
    currency: "USD",
    rateLimitMultiplier: 1,
    features: featureFlags(["api_access"]),
    quotas: quotas({ api_calls: 100n, compute_minutes: null, jobs: 10n, storage_mb: 100n }),
  },
  {
    code: "pro",
    displayName: "Pro",
    priceCents: 1999n,
    currency: "USD",
    rateLimitMultiplier: 5,
    features: featureFlags(["api_access", "priority_support", "webhooks", "advanced_analytics"]),
    quotas: quotas({ api_calls: 10_000n, compute_minutes: null, jobs: 500n, storage_mb: 10_240n }),
  },
  {
    code: "enterprise",
    displayName: "Enterprise",
    priceCents: 9999n,
    currency: "USD",
    rateLimitMultiplier: 10,
    features: featureFlags([...FEATURES]),
    quotas: quotas({ api_calls: null, compute_minutes: null, jobs: null, storage_mb: null }),
  },
];

/**
 * Upserts the default catalog by code in one transaction. Idempotent: a second run writes no
 * row. Plans and metrics that are not in the default catalog are left alone.
 */
export async function seedCatalog(pool: DatabasePool): Promise<void> {
  await pool.transaction(async (tx) => {
    for (const metric of DEFAULT_METRICS) {
      await upsertMetric(tx, metric);
    }
    for (const plan of DEFAULT_PLANS) {
      await upsertPlan(tx, plan);
      await replacePlanQuotas(tx, plan.code, plan.quotas);
      await replacePlanFeatures(tx, plan.code, plan.features);
    }
    await notifyCatalogChanged(tx);
  });
}
