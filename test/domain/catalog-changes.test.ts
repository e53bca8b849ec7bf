import { describe, expect, it } from "vitest";
import { catalogChanges } from "../../src/domain/catalog-changes.ts";
import type { CatalogDefinition } from "../../src/domain/catalog.ts";
import { defaultCatalog } from "../support/catalog.ts";

/** The default catalog with pro raised, enterprise gone, a partner plan, a weekly metric and a new feature. */
const changed: CatalogDefinition = {
  ...defaultCatalog,
  metrics: [
    ...defaultCatalog.metrics.map((metric) => (metric.code === "jobs" ? { ...metric, description: "Jobs run" } : metric)),
    { code: "exports", resetPeriod: "week", description: "Exports per ISO week" },
  ],
  features: [...defaultCatalog.features, { code: "beta_access", description: "Beta" }],
  plans: [
    ...defaultCatalog.plans
      .filter((plan) => plan.code !== "enterprise")
      .map((plan) =>
        plan.code === "pro"
          ? {
              ...plan,
              priceCents: 2499n,
              trialDays: 14,
              features: [...plan.features.filter((feature) => feature !== "webhooks"), "sso"],
              quotas: [...plan.quotas.map((quota) => (quota.metric === "jobs" ? { ...quota, limit: null } : quota)), { metric: "exports", limit: 5n }],
            }
          : plan,
      ),
    { ...defaultCatalog.plans[0]!, code: "partner", displayName: "Partner", visibility: "hidden" },
  ],
};

describe("catalogChanges", () => {
  it("is empty for the catalog the database holds", () => {
    expect(catalogChanges(defaultCatalog, defaultCatalog)).toEqual([]);
  });

  it("says every change, one line each, in the file's paths", () => {
    expect(catalogChanges(defaultCatalog, changed)).toEqual([
      "metrics.jobs: description",
      "metrics.exports: added",
      "features.beta_access: added",
      "plans.pro: new version (price_cents 1999 -> 2499; trial_days (none) -> 14; features +sso -webhooks; quotas.jobs 500 -> unlimited; quotas.exports 0 (not listed) -> 5)",
      "plans.partner: added",
      "plans.enterprise: archived (its subscribers keep it)",
    ]);
  });

  it("adds everything to a database that holds no catalog", () => {
    const changes = catalogChanges(undefined, defaultCatalog);
    expect(changes[0]).toBe("default_plan: (none) -> free");
    expect(changes.filter((change) => change.endsWith(": added"))).toHaveLength(4 + 7 + 3);
  });

  it("names a metric whose reset changes, and a new default plan", () => {
    const weekly: CatalogDefinition = {
      ...defaultCatalog,
      defaultPlan: "pro",
      metrics: defaultCatalog.metrics.map((metric) => (metric.code === "jobs" ? { ...metric, resetPeriod: "week" } : metric)),
    };
    expect(catalogChanges(defaultCatalog, weekly)).toEqual(["default_plan: free -> pro", "metrics.jobs: reset month -> week"]);
  });
});
