import type { DatabasePool } from "slonik";
import { sql } from "slonik";
import { latestVersions, plansOf, sameTerms, type CatalogDefinition } from "../domain/catalog.ts";
import { upsertMetric } from "./catalog-metrics.ts";
import { notifyCatalogChanged } from "./notifications.ts";
import { findAllPlanVersions, insertPlanVersion } from "./plan-versions.ts";
import { ensurePlan } from "./plans.ts";

/** Serializes catalog writes across replicas (an arbitrary key of this service's own). */
const CATALOG_LOCK = 7_240_001;

/**
 * Writes a catalog's metrics and plans in one transaction (the default catalog, at start): a
 * plan whose terms differ from its latest version's gets a new version; a new plan starts at
 * version 1. Idempotent: a second run writes no row. Replicas that start together take turns
 * (a transaction lock), so they publish each change once. Plans and metrics the catalog does not
 * declare are left alone. With `onlyIfEmpty`, a database that has any plan is left as it is (the
 * default catalog at start never undoes a team's own).
 */
export async function seedCatalog(
  pool: DatabasePool,
  catalog: CatalogDefinition,
  options: { readonly onlyIfEmpty?: boolean; readonly at?: Date } = {},
): Promise<void> {
  await pool.transaction(async (tx) => {
    await tx.query(sql.unsafe`select pg_advisory_xact_lock(${CATALOG_LOCK})`);
    if (options.onlyIfEmpty === true && (await tx.exists(sql.unsafe`select 1 from plans`))) return;
    for (const metric of catalog.metrics) {
      await upsertMetric(tx, metric);
    }
    const latest = latestVersions(await findAllPlanVersions(tx));
    for (const terms of plansOf(catalog)) {
      const current = latest.get(terms.code);
      if (current !== undefined && sameTerms(current, terms)) continue;
      await ensurePlan(tx, terms.code);
      await insertPlanVersion(tx, terms, (current?.version ?? 0) + 1, options.at ?? new Date());
    }
    await notifyCatalogChanged(tx);
  });
}
