import { sql, type CommonQueryMethods, type DatabasePool } from "slonik";
import { definitionOf, latestVersions, plansOf, sameTerms, type CatalogDefinition } from "../domain/catalog.ts";
import { archiveMetricsOtherThan, findAllMetrics, metricsInUse, metricsWithUsage, upsertMetric } from "./catalog-metrics.ts";
import { findDefaultPlan, setDefaultPlan } from "./catalog-settings.ts";
import { archiveFeaturesOtherThan, findAllFeatures, upsertFeature } from "./features.ts";
import { notifyCatalogChanged } from "./notifications.ts";
import { findAllPlanVersions, insertPlanVersion } from "./plan-versions.ts";
import { archivePlansOtherThan, ensurePlan, findArchivedPlans } from "./plans.ts";

/** Serializes catalog writes across replicas (an arbitrary key of this service's own). */
const CATALOG_LOCK = 7_240_001;

/** A catalog that would change what the database already holds in a way it cannot: what and why. */
export class CatalogConflictError extends Error {
  override name = "CatalogConflictError";
  readonly problems: readonly { readonly path: string; readonly message: string }[];

  constructor(problems: readonly { readonly path: string; readonly message: string }[]) {
    super(problems.map((problem) => `${problem.path}: ${problem.message}`).join("\n"));
    this.problems = problems;
  }
}

/** The catalog the database holds now, as a file would declare it (undefined: it has no plan). */
export async function findCatalogDefinition(db: CommonQueryMethods): Promise<CatalogDefinition | undefined> {
  const versions = await findAllPlanVersions(db);
  if (versions.length === 0) return undefined;
  const archived = new Set(await findArchivedPlans(db));
  return {
    defaultPlan: await findDefaultPlan(db),
    metrics: await findAllMetrics(db),
    features: await findAllFeatures(db),
    plans: [...latestVersions(versions).values()].filter((plan) => !archived.has(plan.code)).map(definitionOf),
  };
}

/** What `catalog` would change that the database cannot take: a reset changed under usage, a metric in use removed. */
async function conflicts(db: CommonQueryMethods, catalog: CatalogDefinition): Promise<{ path: string; message: string }[]> {
  const current = await findAllMetrics(db);
  const next = new Map(catalog.metrics.map((metric) => [metric.code, metric]));
  const resetChanged = current.filter((metric) => next.has(metric.code) && next.get(metric.code)!.resetPeriod !== metric.resetPeriod);
  const removed = current.filter((metric) => !next.has(metric.code)).map((metric) => metric.code);
  const [counted, inUse] = await Promise.all([metricsWithUsage(db, resetChanged.map((metric) => metric.code)), metricsInUse(db, removed)]);
  return [
    ...resetChanged
      .filter((metric) => counted.includes(metric.code))
      .map((metric) => ({
        path: `metrics.${metric.code}.reset`,
        message: `cannot change from "${metric.resetPeriod}" to "${next.get(metric.code)!.resetPeriod}": usage has been counted on it`,
      })),
    ...inUse.map((code) => ({ path: `metrics.${code}`, message: "cannot be removed: a plan version subscribers are on limits it" })),
  ];
}

/**
 * Makes the database hold `catalog`, in one transaction: a plan whose terms differ from its
 * latest version's gets a new version, a new plan starts at version 1, and plans, metrics and
 * features it no longer lists are archived (kept for what refers to them, never offered).
 * Idempotent: a second run writes no row. Replicas that apply together take turns (a transaction
 * lock), so each change is published once. A change the database cannot take fails with
 * CatalogConflictError and writes nothing. With `onlyIfEmpty`, a database that has any plan is
 * left as it is (the default catalog at start never undoes a team's own). Returns the plan
 * versions it published ("pro v2"), none when nothing changed.
 */
export async function seedCatalog(
  pool: DatabasePool,
  catalog: CatalogDefinition,
  options: {
    readonly onlyIfEmpty?: boolean;
    readonly at?: Date;
    /** Runs in the same transaction once the catalog is written (an audit event). */
    readonly record?: (tx: CommonQueryMethods) => Promise<void>;
  } = {},
): Promise<string[]> {
  const at = options.at ?? new Date();
  const published: string[] = [];
  await pool.transaction(async (tx) => {
    await tx.query(sql.unsafe`select pg_advisory_xact_lock(${CATALOG_LOCK})`);
    if (options.onlyIfEmpty === true && (await tx.exists(sql.unsafe`select 1 from plans`))) return;
    const problems = await conflicts(tx, catalog);
    if (problems.length > 0) throw new CatalogConflictError(problems);
    for (const metric of catalog.metrics) await upsertMetric(tx, metric);
    for (const feature of catalog.features) await upsertFeature(tx, feature);
    const latest = latestVersions(await findAllPlanVersions(tx));
    for (const terms of plansOf(catalog)) {
      const current = latest.get(terms.code);
      await ensurePlan(tx, terms.code);
      if (current !== undefined && sameTerms(current, terms)) continue;
      await insertPlanVersion(tx, terms, (current?.version ?? 0) + 1, at);
      published.push(`${terms.code} v${(current?.version ?? 0) + 1}`);
    }
    await setDefaultPlan(tx, catalog.defaultPlan);
    await archivePlansOtherThan(tx, catalog.plans.map((plan) => plan.code), at);
    await archiveMetricsOtherThan(tx, catalog.metrics.map((metric) => metric.code), at);
    await archiveFeaturesOtherThan(tx, catalog.features.map((feature) => feature.code), at);
    await options.record?.(tx);
    await notifyCatalogChanged(tx);
  });
  return published;
}
