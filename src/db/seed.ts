import type { DatabasePool } from "slonik";
import { plansOf, type CatalogDefinition } from "../domain/catalog.ts";
import { upsertMetric } from "./catalog-metrics.ts";
import { notifyCatalogChanged } from "./notifications.ts";
import { replacePlanFeatures } from "./plan-features.ts";
import { replacePlanQuotas } from "./plan-quotas.ts";
import { upsertPlan } from "./plans.ts";

/**
 * Upserts a catalog's metrics and plans by code in one transaction (the default catalog, at
 * start). Idempotent: a second run writes no row. Plans and metrics it does not declare are left
 * alone.
 */
export async function seedCatalog(pool: DatabasePool, catalog: CatalogDefinition): Promise<void> {
  await pool.transaction(async (tx) => {
    for (const metric of catalog.metrics) {
      await upsertMetric(tx, metric);
    }
    for (const plan of plansOf(catalog)) {
      await upsertPlan(tx, plan);
      await replacePlanQuotas(tx, plan.code, plan.quotas);
      await replacePlanFeatures(tx, plan.code, plan.features);
    }
    await notifyCatalogChanged(tx);
  });
}
