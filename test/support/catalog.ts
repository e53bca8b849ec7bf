import { loadDefaultCatalog } from "../../src/app/catalog-file.ts";
import { plansOf } from "../../src/domain/catalog.ts";

/** The default catalog (catalog/default.yaml), as the service seeds it: every plan at version 1. */
export const defaultCatalog = await loadDefaultCatalog();
export const defaultPlans = plansOf(defaultCatalog).map((terms) => ({ ...terms, version: 1 }));
export const defaultMetrics = defaultCatalog.metrics;
