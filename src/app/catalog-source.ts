import type { CommonQueryMethods } from "slonik";
import { Catalog } from "../domain/catalog.ts";
import { findAllMetrics } from "../db/catalog-metrics.ts";
import { findAllPlans } from "../db/plans.ts";
import type { Logger } from "../platform/logger.ts";

/** How stale the in-memory catalog may become after a change to the plans in the database. */
export const CATALOG_REFRESH_MS = 30_000;

export async function loadCatalog(db: CommonQueryMethods): Promise<Catalog> {
  const [plans, metrics] = await Promise.all([findAllPlans(db), findAllMetrics(db)]);
  return new Catalog(plans, metrics);
}

/**
 * The catalog, held in memory: every call reads it, and it only changes when plans are seeded.
 * Refreshed in the background; a failed refresh keeps the last good catalog.
 */
export class CatalogSource {
  #catalog: Catalog;
  #timer: NodeJS.Timeout | undefined;
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

  async refresh(): Promise<void> {
    this.#catalog = await loadCatalog(this.#db);
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
