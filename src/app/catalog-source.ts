import type { CommonQueryMethods } from "slonik";
import { Catalog } from "../domain/catalog.ts";
import { findAllMetrics } from "../db/catalog-metrics.ts";
import { findAllPlanVersions } from "../db/plan-versions.ts";
import { findDefaultPlan } from "../db/catalog-settings.ts";
import { findAllFeatures } from "../db/features.ts";
import { findArchivedPlans } from "../db/plans.ts";
import type { Logger } from "../platform/logger.ts";

/** How stale the in-memory catalog may become after a change to the plans in the database. */
export const CATALOG_REFRESH_MS = 30_000;

export async function loadCatalog(db: CommonQueryMethods): Promise<Catalog> {
  const [plans, metrics, defaultPlan, archivedPlans, features] = await Promise.all([
    findAllPlanVersions(db),
    findAllMetrics(db),
    findDefaultPlan(db),
    findArchivedPlans(db),
    findAllFeatures(db),
  ]);
  return new Catalog(plans, metrics, { defaultPlan, archivedPlans: new Set(archivedPlans), features: features.map((feature) => feature.code) });
}

/**
 * The catalog, held in memory: every call reads it, and it only changes when plans are seeded.
 * Refreshed in the background; a failed refresh keeps the last good catalog.
 */
export class CatalogSource {
  #catalog: Catalog;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  readonly #db: CommonQueryMethods;
  readonly #logger: Logger;

  private constructor(catalog: Catalog, db: CommonQueryMethods, logger: Logger) {
    this.#catalog = catalog;
    this.#db = db;
    this.#logger = logger;
  }

  static async load(db: CommonQueryMethods, logger: Logger): Promise<CatalogSource> {
    return new CatalogSource(await loadCatalog(db), db, logger);
  }

  get current(): Catalog {
    return this.#catalog;
  }

  /**
   * Reads the catalog again; calls made while a read is under way share it. Inside a transaction
   * (where the pool may not be used), through that transaction's `db`.
   */
  refresh(db?: CommonQueryMethods): Promise<void> {
    if (db !== undefined) {
      return loadCatalog(db).then((catalog) => {
        this.#catalog = catalog;
      });
    }
    this.#refreshing ??= loadCatalog(this.#db)
      .then((catalog) => {
        this.#catalog = catalog;
      })
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }

  startRefreshing(intervalMs = CATALOG_REFRESH_MS): void {
    this.#timer ??= setInterval(() => {
      this.refresh().catch((error: unknown) => {
        this.#logger.warn({ err: error }, "catalog refresh failed; keeping the last catalog");
      });
    }, intervalMs).unref();
  }

  stopRefreshing(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
