import { beforeAll, describe, expect, it } from "vitest";
import { sql } from "slonik";
import { z } from "zod";
import { seedCatalog } from "../../src/db/seed.ts";
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
    union all select 'quotas:' || plan_code || metric_code || ':' || xmin::text from plan_quotas
    union all select 'features:' || plan_code || feature || ':' || xmin::text from plan_features
    union all select 'metrics:' || code || ':' || xmin::text from metrics
    order by 1
  `);
}

describe("seedCatalog", () => {
  it("writes nothing when run again", async () => {
    const before = await catalogRowVersions();
    expect(before.length).toBeGreaterThan(20);
    await seedCatalog(database.pool, defaultCatalog);
    await seedCatalog(database.pool, defaultCatalog);
    expect(await catalogRowVersions()).toEqual(before);
  });

  it("restores drifted values by code", async () => {
    await database.pool.query(sql.unsafe`update plans set price_cents = 1 where code = 'pro'`);
    await database.pool.query(sql.unsafe`update plan_quotas set quota_limit = 1 where plan_code = 'free' and metric_code = 'jobs'`);
    await database.pool.query(sql.unsafe`insert into plan_features values ('free', 'stray_flag', true)`);
    await seedCatalog(database.pool, defaultCatalog);
    expect(await database.pool.oneFirst(sql.type(z.object({ price_cents: z.bigint() }))`select price_cents from plans where code = 'pro'`)).toBe(1999n);
    expect(
      await database.pool.oneFirst(sql.type(z.object({ quota_limit: z.bigint() }))`
        select quota_limit from plan_quotas where plan_code = 'free' and metric_code = 'jobs'
      `),
    ).toBe(10n);
    expect(await database.pool.exists(sql.unsafe`select 1 from plan_features where feature = 'stray_flag'`)).toBe(false);
  });

  it("can run from several replicas at once", async () => {
    await Promise.all([seedCatalog(database.pool, defaultCatalog), seedCatalog(database.pool, defaultCatalog), seedCatalog(database.pool, defaultCatalog)]);
    expect(await database.pool.oneFirst(sql.type(z.object({ count: z.bigint() }))`select count(*) from plans`)).toBe(3n);
  });
});
