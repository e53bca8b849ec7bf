import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { ResetPeriod } from "../../gen/entitlements/v1/plan_pb.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { seedCatalog } from "../../src/db/seed.ts";
import type { CatalogDefinition } from "../../src/domain/catalog.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { DAY_MS } from "../support/clock.ts";
import { createTestService, type TestService } from "../support/service.ts";

/** The default catalog plus a weekly and a yearly metric, each with a small limit on free. */
const withWeeksAndYears: CatalogDefinition = {
  ...defaultCatalog,
  metrics: [
    ...defaultCatalog.metrics,
    { code: "exports", resetPeriod: "week", description: "Exports per ISO week" },
    { code: "reports", resetPeriod: "year", description: "Reports per UTC year" },
  ],
  plans: defaultCatalog.plans.map((plan) =>
    plan.code === "free" ? { ...plan, quotas: [...plan.quotas, { metric: "exports", limit: 3n }, { metric: "reports", limit: 2n }] } : plan,
  ),
};

/** Period rollovers and gauges, driven by the injected clock. */
let service: TestService;
beforeAll(async () => {
  service = await createTestService("2026-01-31T23:59:59.999Z");
  await seedCatalog(service.pool, withWeeksAndYears);
  await service.catalog.refresh();
});

async function used(userId: string, metric: string): Promise<bigint | undefined> {
  return (await service.client.checkQuota({ userId, metric })).quota?.used;
}

describe("counters", () => {
  it("start again at the first instant of a UTC month", async () => {
    const userId = "monthly";
    service.clock.set("2026-01-31T23:59:59.999Z");
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 10n });
    await expect(service.client.incrementUsage({ userId, metric: "jobs", amount: 1n })).rejects.toThrow(/quota exceeded/);
    service.clock.set("2026-02-01T00:00:00.000Z");
    expect(await used(userId, "jobs")).toBe(0n);
    const response = await service.client.incrementUsage({ userId, metric: "jobs", amount: 10n });
    expect(response.quota?.used).toBe(10n);
  });

  it("count API calls per UTC day", async () => {
    const userId = "daily";
    service.clock.set("2028-02-28T23:59:59Z");
    await service.client.incrementUsage({ userId, metric: "api_calls", amount: 100n });
    service.clock.set("2028-02-29T00:00:00Z");
    expect(await used(userId, "api_calls")).toBe(0n);
    await service.client.incrementUsage({ userId, metric: "api_calls", amount: 40n });
    service.clock.advance(DAY_MS - 1);
    expect(await used(userId, "api_calls")).toBe(40n);
    service.clock.advance(1);
    expect(await used(userId, "api_calls")).toBe(0n);
  });

  it("start again every Monday at 00:00 UTC, across the turn of a year", async () => {
    const userId = "weekly";
    // Sunday 2026-12-06 ends the ISO week that began on Monday 2026-11-30.
    service.clock.set("2026-12-06T23:59:59.999Z");
    const full = await service.client.incrementUsage({ userId, metric: "exports", amount: 3n });
    expect(timestampDate(full.quota!.periodStart!)).toEqual(new Date("2026-11-30T00:00:00Z"));
    expect(timestampDate(full.quota!.resetsAt!)).toEqual(new Date("2026-12-07T00:00:00Z"));
    await expect(service.client.incrementUsage({ userId, metric: "exports", amount: 1n })).rejects.toThrow(/quota exceeded/);
    service.clock.set("2026-12-07T00:00:00Z");
    expect(await used(userId, "exports")).toBe(0n);
    // Thursday 2026-12-31 and Sunday 2027-01-03 are one week, which began on Monday 2026-12-28.
    service.clock.set("2026-12-31T12:00:00Z");
    await service.client.incrementUsage({ userId, metric: "exports", amount: 2n });
    service.clock.set("2027-01-03T23:00:00Z");
    expect(await used(userId, "exports")).toBe(2n);
    service.clock.set("2027-01-04T00:00:00Z");
    expect(await used(userId, "exports")).toBe(0n);
  });

  it("start again on the first of January at 00:00 UTC", async () => {
    const userId = "yearly";
    service.clock.set("2027-12-31T23:59:59.999Z");
    const full = await service.client.incrementUsage({ userId, metric: "reports", amount: 2n });
    expect(timestampDate(full.quota!.resetsAt!)).toEqual(new Date("2028-01-01T00:00:00Z"));
    service.clock.set("2028-01-01T00:00:00Z");
    expect(await used(userId, "reports")).toBe(0n);
    const { plan } = await service.client.getPlan({ userId });
    expect(plan?.quotas.find((quota) => quota.metric === "reports")?.resetPeriod).toBe(ResetPeriod.YEAR);
    expect(plan?.quotas.find((quota) => quota.metric === "exports")?.resetPeriod).toBe(ResetPeriod.WEEK);
  });
});

describe("gauges", () => {
  it("go up and down, never below zero, and never reset", async () => {
    const userId = "gauge";
    service.clock.set("2026-05-31T12:00:00Z");
    expect((await service.client.incrementUsage({ userId, metric: "storage_mb", amount: 60n })).quota?.used).toBe(60n);
    expect((await service.client.incrementUsage({ userId, metric: "storage_mb", amount: -20n })).quota?.used).toBe(40n);
    expect((await service.client.incrementUsage({ userId, metric: "storage_mb", amount: -500n })).quota?.used).toBe(0n);
    await service.client.incrementUsage({ userId, metric: "storage_mb", amount: 75n });
    service.clock.set("2027-06-01T00:00:00Z");
    expect(await used(userId, "storage_mb")).toBe(75n);
  });

  it("refuse a raise past the limit and count nothing", async () => {
    const userId = "gauge-full";
    await service.client.incrementUsage({ userId, metric: "storage_mb", amount: 100n });
    const error = await service.client.incrementUsage({ userId, metric: "storage_mb", amount: 1n }).catch((e: unknown) => e);
    expect(ConnectError.from(error).code).toBe(Code.ResourceExhausted);
    expect(await used(userId, "storage_mb")).toBe(100n);
  });

  it("stay defined above the limit after a downgrade", async () => {
    const userId = "downgraded";
    await service.client.upgradePlan({ userId, planCode: "pro" });
    await service.client.incrementUsage({ userId, metric: "storage_mb", amount: 8192n });
    await service.client.upgradePlan({ userId, planCode: "free" });

    const check = await service.client.checkQuota({ userId, metric: "storage_mb", amount: 1n });
    expect(check.allowed).toBe(false);
    expect(check.quota).toMatchObject({ used: 8192n, limit: 100n, remaining: 0n });
    expect((await service.client.checkQuota({ userId, metric: "storage_mb", amount: -100n })).allowed).toBe(true);

    const raise = await service.client.incrementUsage({ userId, metric: "storage_mb", amount: 1n }).catch((e: unknown) => e);
    expect(ConnectError.from(raise).code).toBe(Code.ResourceExhausted);
    const lowered = await service.client.incrementUsage({ userId, metric: "storage_mb", amount: -100n });
    expect(lowered.quota).toMatchObject({ used: 8092n, remaining: 0n });
  });
});

describe("idempotency keys", () => {
  it("are kept 35 days, then a reuse counts afresh", async () => {
    const userId = "retention";
    service.clock.set("2026-07-01T00:00:00Z");
    // A gauge, so the second count adds to the first whatever the period.
    const request = { userId, metric: "storage_mb", amount: 5n, idempotencyKey: "long-lived" };
    await service.client.incrementUsage(request);
    service.clock.set(new Date(new Date("2026-07-01T00:00:00Z").getTime() + 35 * DAY_MS - 1));
    expect((await service.client.incrementUsage(request)).replayed).toBe(true);
    service.clock.set(new Date(new Date("2026-07-01T00:00:00Z").getTime() + 35 * DAY_MS));
    const fresh = await service.client.incrementUsage(request);
    expect(fresh.replayed).toBe(false);
    expect(fresh.quota?.used).toBe(10n);
  });

  it("replay the first result even after the period rolled over", async () => {
    const userId = "replay-rollover";
    service.clock.set("2026-08-31T23:00:00Z");
    const first = await service.client.incrementUsage({ userId, metric: "jobs", amount: 4n, idempotencyKey: "k" });
    service.clock.set("2026-09-01T01:00:00Z");
    const retry = await service.client.incrementUsage({ userId, metric: "jobs", amount: 4n, idempotencyKey: "k" });
    expect(retry.replayed).toBe(true);
    expect(retry.quota).toEqual(first.quota);
    expect(await used(userId, "jobs")).toBe(0n);
  });

  it("are released when the increment is refused, so a retry is decided afresh", async () => {
    const userId = "refused-key";
    service.clock.set("2026-10-10T00:00:00Z");
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 8n });
    const request = { userId, metric: "jobs", amount: 5n, idempotencyKey: "big" };
    await expect(service.client.incrementUsage(request)).rejects.toThrow(/quota exceeded/);
    service.clock.set("2026-11-01T00:00:00Z");
    const retry = await service.client.incrementUsage(request);
    expect(retry).toMatchObject({ replayed: false, quota: { used: 5n } });
  });
});

describe("counters that follow the subscription", () => {
  it("start again on the subscriber's billing day, and on calendar months without a subscription", async () => {
    const anchored: CatalogDefinition = {
      ...withWeeksAndYears,
      metrics: withWeeksAndYears.metrics.map((metric) => (metric.code === "jobs" ? { ...metric, resetAnchor: "subscription" as const } : metric)),
    };
    await seedCatalog(service.pool, anchored);
    await service.catalog.refresh();
    try {
      service.clock.set("2026-03-15T12:00:00Z");
      await service.client.upgradePlan({ userId: "anchored", planCode: "pro" });
      await service.client.incrementUsage({ userId: "anchored", metric: "jobs", amount: 7n });
      await service.client.incrementUsage({ userId: "calendar", metric: "jobs", amount: 7n });
      service.clock.set("2026-04-10T00:00:00Z");
      const { quota } = await service.client.checkQuota({ userId: "anchored", metric: "jobs" });
      expect(quota?.used).toBe(7n);
      expect(timestampDate(quota!.periodStart!)).toEqual(new Date("2026-03-15T12:00:00Z"));
      expect(timestampDate(quota!.resetsAt!)).toEqual(new Date("2026-04-15T12:00:00Z"));
      expect(await used("calendar", "jobs")).toBe(0n);
      service.clock.set("2026-04-15T12:00:00Z");
      expect(await used("anchored", "jobs")).toBe(0n);
      expect((await service.client.getPlan({ userId: "anchored" })).subscription?.currentPeriodStart).toEqual(quota?.resetsAt);
    } finally {
      await seedCatalog(service.pool, withWeeksAndYears);
      await service.catalog.refresh();
    }
  });
});
