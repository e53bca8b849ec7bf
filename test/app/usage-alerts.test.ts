import { sql } from "slonik";
import { z } from "zod";
import { beforeAll, describe, expect, it } from "vitest";
import type { ComposedService } from "../../src/compose.ts";
import { seedCatalog } from "../../src/db/seed.ts";
import { TestClock } from "../support/clock.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { composeTestService, inMemoryClient } from "../support/service.ts";

let database: TestDatabase;
let service: ComposedService;
const clock = new TestClock("2026-03-15T12:00:00Z");
const client = () => inMemoryClient(service.served);

beforeAll(async () => {
  database = await createTestDatabase();
  // api_calls announces at 50, 80 and 100%; every other metric at the default 80 and 100%.
  await seedCatalog(database.pool, {
    ...defaultCatalog,
    metrics: defaultCatalog.metrics.map((metric) => (metric.code === "api_calls" ? { ...metric, alertThresholds: [50, 80, 100] } : metric)),
  });
  service = await composeTestService(database.pool, clock);
});

/** The user's threshold events as "metric threshold used/limit", once the announcements settle. */
async function alertsOf(userId: string, count: number): Promise<string[]> {
  const read = async () =>
    (
      await database.pool.anyFirst(sql.type(z.object({ details: z.record(z.string(), z.string()) }))`
        select details from entitlement_events where user_id = ${userId} and type = 'usage.threshold_crossed' order by revision
      `)
    ).map((details) => `${details.metric} ${details.threshold} ${details.used}/${details.limit}`);
  const until = Date.now() + 5000;
  while ((await read()).length < count && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
  // A little longer: nothing more must come.
  await new Promise((resolve) => setTimeout(resolve, 100));
  return read();
}

describe("usage thresholds", () => {
  it("are each announced once per period, when a write reaches them", async () => {
    const userId = "alert-jobs";
    await client().incrementUsage({ userId, metric: "jobs", amount: 7n });
    expect(await alertsOf(userId, 0)).toEqual([]);
    await client().incrementUsage({ userId, metric: "jobs", amount: 1n });
    expect(await alertsOf(userId, 1)).toEqual(["jobs 80 8/10"]);
    await client().incrementUsage({ userId, metric: "jobs", amount: 1n });
    await client().incrementUsage({ userId, metric: "jobs", amount: 1n });
    await client().incrementUsage({ userId, metric: "jobs", amount: 1n }).catch(() => undefined);
    expect(await alertsOf(userId, 2)).toEqual(["jobs 80 8/10", "jobs 100 10/10"]);
    clock.set("2026-04-02T00:00:00Z");
    await client().incrementUsage({ userId, metric: "jobs", amount: 9n });
    expect(await alertsOf(userId, 3)).toEqual(["jobs 80 8/10", "jobs 100 10/10", "jobs 80 9/10"]);
    clock.set("2026-03-15T12:00:00Z");
  });

  it("crossed together give one event each, in order, with the metric's own thresholds", async () => {
    const userId = "alert-burst";
    await client().consumeUsage({ userId, items: [{ metric: "api_calls", amount: 100n }, { metric: "jobs", amount: 1n }] });
    expect(await alertsOf(userId, 3)).toEqual(["api_calls 50 100/100", "api_calls 80 100/100", "api_calls 100 100/100"]);
  });

  it("are not announced for unlimited metrics or gauges", async () => {
    const userId = "alert-none";
    await client().upgradePlan({ userId, planCode: "enterprise" });
    await client().incrementUsage({ userId, metric: "jobs", amount: 1000n });
    await client().upgradePlan({ userId, planCode: "free" });
    await client().setUsage({ userId, metric: "storage_mb", value: 100n });
    expect(await alertsOf(userId, 0)).toEqual([]);
  });

  it("that a replica never announced (it stopped first) are announced on the row's next write, by any replica", async () => {
    const userId = "alert-late";
    await client().incrementUsage({ userId, metric: "jobs", amount: 1n });
    // As if the write reaching 90% had committed on a replica that stopped before announcing.
    await database.pool.query(sql.unsafe`update usage_counters set used = 9 where user_id = ${userId} and metric_code = 'jobs'`);
    const other = await composeTestService(database.pool, clock);
    await inMemoryClient(other.served).incrementUsage({ userId, metric: "jobs", amount: 1n });
    expect(await alertsOf(userId, 2)).toEqual(["jobs 80 10/10", "jobs 100 10/10"]);
  });

  it("start again after a usage reset", async () => {
    const userId = "alert-reset";
    await client().incrementUsage({ userId, metric: "jobs", amount: 8n });
    expect(await alertsOf(userId, 1)).toHaveLength(1);
    await service.administration.resetUsage("root", userId, undefined, "support");
    await client().incrementUsage({ userId, metric: "jobs", amount: 8n });
    expect(await alertsOf(userId, 2)).toEqual(["jobs 80 8/10", "jobs 80 8/10"]);
  });
});
