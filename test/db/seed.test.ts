import { beforeAll, describe, expect, it } from "vitest";
import { sql } from "slonik";
import { z } from "zod";
import { loadCatalog } from "../../src/app/catalog-source.ts";
import { seedCatalog } from "../../src/db/seed.ts";
import type { CatalogDefinition } from "../../src/domain/catalog.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});

/** Row versions of every catalog row: unchanged versions mean nothing was written. */
async function catalogRowVersions(): Promise<readonly string[]> {
  return database.pool.anyFirst(sql.type(z.object({ version: z.string() }))`
    select 'plans:' || code || ':' || xmin::text as version from plans
    union all select 'versions:' || plan_code || version || ':' || xmin::text from plan_versions
    union all select 'quotas:' || plan_code || plan_version || metric_code || ':' || xmin::text from plan_quotas
    union all select 'features:' || plan_code || plan_version || feature || ':' || xmin::text from plan_features
    union all select 'metrics:' || code || ':' || xmin::text from metrics
    order by 1
  `);
}

/** The default catalog with `change` made to the plan `code`. */
function withPlanChange(code: string, change: Partial<CatalogDefinition["plans"][number]>): CatalogDefinition {
  return { ...defaultCatalog, plans: defaultCatalog.plans.map((plan) => (plan.code === code ? { ...plan, ...change } : plan)) };
}

const versionsOf = (code: string) =>
  database.pool.anyFirst(sql.type(z.object({ version: z.number() }))`select version from plan_versions where plan_code = ${code} order by version`);

describe("seedCatalog", () => {
  it("writes nothing when run again", async () => {
    const before = await catalogRowVersions();
    expect(before.length).toBeGreaterThan(20);
    await seedCatalog(database.pool, defaultCatalog);
    await seedCatalog(database.pool, defaultCatalog);
    expect(await catalogRowVersions()).toEqual(before);
  });

  it("publishes a new version of a plan whose terms changed, and keeps the old one as it was", async () => {
    await seedCatalog(database.pool, withPlanChange("pro", { priceCents: 2499n, quotas: [{ metric: "jobs", limit: 800n }] }));
    expect(await versionsOf("pro")).toEqual([1, 2]);
    expect(await versionsOf("free")).toEqual([1]);
    const catalog = await loadCatalog(database.pool);
    expect(catalog.plan("pro")).toMatchObject({ version: 2, priceCents: 2499n, quotas: [{ metric: "jobs", limit: 800n }] });
    expect(catalog.planVersion("pro", 1)).toMatchObject({ version: 1, priceCents: 1999n });
    expect(catalog.planVersion("pro", 1)?.quotas.map((quota) => quota.metric)).toEqual(["api_calls", "compute_minutes", "jobs", "storage_mb"]);
    // Back to the old terms is a change too: version 3, equal to version 1.
    await seedCatalog(database.pool, defaultCatalog);
    expect(await versionsOf("pro")).toEqual([1, 2, 3]);
    expect((await loadCatalog(database.pool)).plan("pro")).toMatchObject({ version: 3, priceCents: 1999n });
  });

  it("publishes no version for a feature added to the catalog, off in every plan", async () => {
    const before = await catalogRowVersions();
    await seedCatalog(database.pool, { ...defaultCatalog, features: [...defaultCatalog.features, { code: "beta_access", description: "Beta" }] });
    expect((await catalogRowVersions()).filter((row) => row.startsWith("versions:"))).toEqual(before.filter((row) => row.startsWith("versions:")));
  });

  it("leaves a database that has plans alone when asked to seed only an empty one", async () => {
    const before = await catalogRowVersions();
    await seedCatalog(database.pool, withPlanChange("free", { priceCents: 100n }), { onlyIfEmpty: true });
    expect(await catalogRowVersions()).toEqual(before);
  });

  it("publishes each change once when several replicas apply it at once", async () => {
    const changed = withPlanChange("enterprise", { displayName: "Enterprise Plus" });
    await Promise.all([seedCatalog(database.pool, changed), seedCatalog(database.pool, changed), seedCatalog(database.pool, changed)]);
    expect(await versionsOf("enterprise")).toEqual([1, 2]);
    expect(await database.pool.oneFirst(sql.type(z.object({ count: z.bigint() }))`select count(*) from plans`)).toBe(3n);
  });
});
