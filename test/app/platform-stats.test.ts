import { beforeAll, describe, expect, it } from "vitest";
import { platformStats } from "../../src/app/platform-stats.ts";
import { seedCatalog } from "../../src/db/seed.ts";
import type { CatalogDefinition } from "../../src/domain/catalog.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { createTestService, type TestService } from "../support/service.ts";

/** Jobs counted per billing month of each subscriber; compute minutes per calendar month. */
const anchoredJobs: CatalogDefinition = {
  ...defaultCatalog,
  metrics: defaultCatalog.metrics.map((metric) => (metric.code === "jobs" ? { ...metric, resetAnchor: "subscription" as const } : metric)),
};

let service: TestService;
beforeAll(async () => {
  service = await createTestService("2026-03-15T12:00:00Z");
  await seedCatalog(service.pool, anchoredJobs);
  await service.catalog.refresh();
});

const usageOf = async (metric: string) =>
  (await platformStats(service.pool, service.entitlements, service.clock.now())).usageThisPeriod.find((row) => row.metric === metric)?.total;

describe("platform usage this period", () => {
  it("sums each user's own current period of a metric that follows the subscription, and the calendar one of the rest", async () => {
    const { client, clock } = service;
    // Billing months from 15 March 12:00 and from 25 March 00:00; a user with no subscription counts calendar months.
    await client.upgradePlan({ userId: "mid-month", planCode: "pro" });
    await client.incrementUsage({ userId: "mid-month", metric: "jobs", amount: 5n });
    clock.set("2026-03-25T00:00:00Z");
    await client.upgradePlan({ userId: "late-month", planCode: "pro" });
    await client.incrementUsage({ userId: "late-month", metric: "jobs", amount: 7n });
    await client.incrementUsage({ userId: "no-subscription", metric: "jobs", amount: 3n });
    await client.incrementUsage({ userId: "no-subscription", metric: "compute_minutes", amount: 11n });
    expect(await usageOf("jobs")).toBe(15n);

    // 1 April: only the calendar user's month turned.
    clock.set("2026-04-01T00:00:00Z");
    expect(await usageOf("jobs")).toBe(12n);
    expect(await usageOf("compute_minutes")).toBe(0n);
    await client.incrementUsage({ userId: "no-subscription", metric: "jobs", amount: 1n });
    expect(await usageOf("jobs")).toBe(13n);

    // 15 April 12:00: mid-month's billing month turned; 25 April: late-month's.
    clock.set("2026-04-15T12:00:00Z");
    await client.incrementUsage({ userId: "mid-month", metric: "jobs", amount: 2n });
    expect(await usageOf("jobs")).toBe(7n + 1n + 2n);
    clock.set("2026-04-25T00:00:00Z");
    expect(await usageOf("jobs")).toBe(1n + 2n);
  });
});
