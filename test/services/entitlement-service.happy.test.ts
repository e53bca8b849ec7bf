import { beforeAll, describe, expect, it } from "vitest";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { sql } from "slonik";
import { z } from "zod";
import { DenialReason } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { ResetPeriod } from "../../gen/entitlements/v1/plan_pb.js";
import { SubscriptionStatus } from "../../gen/entitlements/v1/subscription_pb.js";
import { seedCatalog } from "../../src/db/seed.ts";
import type { CatalogDefinition } from "../../src/domain/catalog.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { DAY_MS } from "../support/clock.ts";
import { createTestService, type TestService } from "../support/service.ts";

/** The default catalog plus a hidden plan, as a partner deal would be. */
const withHiddenPlan: CatalogDefinition = {
  ...defaultCatalog,
  plans: [
    ...defaultCatalog.plans,
    {
      code: "partner",
      displayName: "Partner",
      priceCents: 4999n,
      currency: "USD",
      interval: "month",
      rateLimitMultiplier: 8,
      visibility: "hidden",
      trialDays: null,
      features: ["api_access", "sso"],
      quotas: [{ metric: "jobs", limit: 2000n }],
    },
  ],
};

let service: TestService;
beforeAll(async () => {
  service = await createTestService("2026-03-15T12:00:00Z");
});

describe("GetPlan", () => {
  it("puts an unknown user on free with no subscription", async () => {
    const response = await service.client.getPlan({ userId: "never-seen" });
    expect(response.plan?.code).toBe("free");
    expect(response.plan?.priceCents).toBe(0n);
    expect(response.subscription).toBeUndefined();
  });

  it("describes the plan in full", async () => {
    const { plan } = await service.client.getPlan({ userId: "describe" });
    expect(plan?.features).toMatchObject({ api_access: true, priority_support: false });
    expect(plan?.quotas.map((quota) => [quota.metric, quota.limit, quota.resetPeriod])).toEqual([
      ["api_calls", 100n, ResetPeriod.DAY],
      ["compute_minutes", undefined, ResetPeriod.MONTH],
      ["jobs", 10n, ResetPeriod.MONTH],
      ["storage_mb", 100n, ResetPeriod.NEVER],
    ]);
  });
});

describe("ListPlans", () => {
  it("lists the three plans by price, in cents", async () => {
    const { plans } = await service.client.listPlans({});
    expect(plans.map((plan) => [plan.code, plan.priceCents, plan.rateLimitMultiplier, plan.hidden])).toEqual([
      ["free", 0n, 1, false],
      ["pro", 1999n, 5, false],
      ["enterprise", 9999n, 10, false],
    ]);
  });
});

describe("a hidden plan", () => {
  beforeAll(async () => {
    await seedCatalog(service.pool, withHiddenPlan);
    await service.catalog.refresh();
  });

  it("is listed only with include_hidden, marked hidden", async () => {
    expect((await service.client.listPlans({})).plans.map((plan) => plan.code)).toEqual(["free", "pro", "enterprise"]);
    const { plans } = await service.client.listPlans({ includeHidden: true });
    expect(plans.map((plan) => [plan.code, plan.hidden])).toEqual([
      ["free", false],
      ["pro", false],
      ["partner", true],
      ["enterprise", false],
    ]);
  });

  it("is assignable, and its subscribers get its terms", async () => {
    const upgraded = await service.client.upgradePlan({ userId: "partner-user", planCode: "partner" });
    expect(upgraded.plan).toMatchObject({ code: "partner", hidden: true });
    expect(await service.client.hasFeature({ userId: "partner-user", feature: "sso" })).toMatchObject({ enabled: true, planCode: "partner" });
    expect((await service.client.checkQuota({ userId: "partner-user", metric: "jobs" })).quota?.limit).toBe(2000n);
  });
});

describe("HasFeature", () => {
  it("follows the user's plan", async () => {
    expect(await service.client.hasFeature({ userId: "feat", feature: "priority_support" })).toMatchObject({ enabled: false, planCode: "free" });
    await service.client.upgradePlan({ userId: "feat", planCode: "pro" });
    expect(await service.client.hasFeature({ userId: "feat", feature: "priority_support" })).toMatchObject({ enabled: true, planCode: "pro" });
    expect(await service.client.hasFeature({ userId: "feat", feature: "api_access" })).toMatchObject({ enabled: true });
  });

  it("reports unknown features as disabled", async () => {
    expect((await service.client.hasFeature({ userId: "feat", feature: "time_travel" })).enabled).toBe(false);
  });
});

describe("UpgradePlan", () => {
  it("starts an active subscription, open-ended by default", async () => {
    const response = await service.client.upgradePlan({ userId: "up", planCode: "enterprise" });
    expect(response.plan?.code).toBe("enterprise");
    expect(response.subscription).toMatchObject({ userId: "up", planCode: "enterprise", status: SubscriptionStatus.ACTIVE });
    expect(response.subscription?.expiresAt).toBeUndefined();
    expect((await service.client.getPlan({ userId: "up" })).plan?.code).toBe("enterprise");
  });

  it("lapses back to free after its duration", async () => {
    const userId = "lapse";
    const response = await service.client.upgradePlan({ userId, planCode: "pro", durationDays: 30 });
    const expiresAt = timestampDate(response.subscription!.expiresAt!);
    expect(expiresAt.getTime() - timestampDate(response.subscription!.startedAt!).getTime()).toBe(30 * DAY_MS);
    const start = service.clock.now();
    try {
      service.clock.set(new Date(expiresAt.getTime() - 1));
      expect((await service.client.getPlan({ userId })).plan?.code).toBe("pro");
      service.clock.set(expiresAt);
      const lapsed = await service.client.getPlan({ userId });
      expect(lapsed.plan?.code).toBe("free");
      expect(lapsed.subscription).toBeUndefined();
    } finally {
      service.clock.set(start);
    }
  });

  it("downgrades too, and keeps history in one current row", async () => {
    const userId = "history";
    await service.client.upgradePlan({ userId, planCode: "enterprise" });
    await service.client.upgradePlan({ userId, planCode: "free" });
    expect((await service.client.getPlan({ userId })).plan?.code).toBe("free");
    const rows = await service.pool.any(
      sql.type(z.object({ plan_code: z.string(), ended_at: z.number().nullable() }))`
        select plan_code, ended_at from subscriptions where user_id = ${userId} order by id
      `,
    );
    expect(rows.map((row) => [row.plan_code, row.ended_at !== null])).toEqual([
      ["enterprise", true],
      ["free", false],
    ]);
  });

  it("carries usage over within the period", async () => {
    const userId = "carry";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 10n });
    await service.client.upgradePlan({ userId, planCode: "pro" });
    const { quotas } = await service.client.getUsage({ userId });
    expect(quotas.find((quota) => quota.metric === "jobs")).toMatchObject({ used: 10n, limit: 500n, remaining: 490n });
  });
});

describe("CheckQuota", () => {
  it("decides used + amount against the limit without consuming", async () => {
    const userId = "check";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 8n });
    expect(await service.client.checkQuota({ userId, metric: "jobs", amount: 2n })).toMatchObject({ allowed: true, denialReason: DenialReason.UNSPECIFIED });
    expect(await service.client.checkQuota({ userId, metric: "jobs", amount: 3n })).toMatchObject({ allowed: false, denialReason: DenialReason.QUOTA });
    const again = await service.client.checkQuota({ userId, metric: "jobs", amount: 2n });
    expect(again.quota).toMatchObject({ metric: "jobs", used: 8n, limit: 10n, remaining: 2n });
  });

  it("reads amount 0 as 1", async () => {
    const userId = "check-zero";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 10n });
    expect((await service.client.checkQuota({ userId, metric: "jobs", amount: 0n })).allowed).toBe(false);
    expect((await service.client.checkQuota({ userId: "check-zero-fresh", metric: "jobs" })).allowed).toBe(true);
  });

  it("always allows unlimited metrics", async () => {
    const response = await service.client.checkQuota({ userId: "check-unlimited", metric: "compute_minutes", amount: 1_000_000n });
    expect(response.allowed).toBe(true);
    expect(response.quota?.limit).toBeUndefined();
    expect(response.quota?.remaining).toBeUndefined();
  });
});

describe("IncrementUsage", () => {
  it("counts and reports the period", async () => {
    const response = await service.client.incrementUsage({ userId: "inc", metric: "jobs", amount: 3n });
    expect(response.replayed).toBe(false);
    expect(response.quota).toMatchObject({ metric: "jobs", used: 3n, limit: 10n, remaining: 7n });
    expect(timestampDate(response.quota!.periodStart!)).toEqual(new Date("2026-03-01T00:00:00Z"));
    expect(timestampDate(response.quota!.resetsAt!)).toEqual(new Date("2026-04-01T00:00:00Z"));
  });

  it("grants up to the limit exactly", async () => {
    const userId = "to-the-limit";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 9n });
    const last = await service.client.incrementUsage({ userId, metric: "jobs", amount: 1n });
    expect(last.quota).toMatchObject({ used: 10n, remaining: 0n });
  });

  it("tracks unlimited metrics", async () => {
    const response = await service.client.incrementUsage({ userId: "compute", metric: "compute_minutes", amount: 12_345n });
    expect(response.quota?.used).toBe(12_345n);
    expect(response.quota?.limit).toBeUndefined();
  });

  it("replays a retry with the same key and counts nothing", async () => {
    const userId = "keyed";
    const first = await service.client.incrementUsage({ userId, metric: "jobs", amount: 2n, idempotencyKey: "job-1" });
    const retry = await service.client.incrementUsage({ userId, metric: "jobs", amount: 2n, idempotencyKey: "job-1" });
    expect(first.replayed).toBe(false);
    expect(retry.replayed).toBe(true);
    expect(retry.quota).toEqual(first.quota);
    const usage = await service.client.checkQuota({ userId, metric: "jobs" });
    expect(usage.quota?.used).toBe(2n);
  });

  it("scopes keys to the user", async () => {
    await service.client.incrementUsage({ userId: "scope-a", metric: "jobs", amount: 1n, idempotencyKey: "shared" });
    const other = await service.client.incrementUsage({ userId: "scope-b", metric: "jobs", amount: 1n, idempotencyKey: "shared" });
    expect(other.replayed).toBe(false);
  });
});

describe("GetUsage", () => {
  it("lists every metric of the plan, zeros included", async () => {
    const { quotas } = await service.client.getUsage({ userId: "usage-fresh" });
    expect(quotas.map((quota) => [quota.metric, quota.used, quota.limit])).toEqual([
      ["api_calls", 0n, 100n],
      ["compute_minutes", 0n, undefined],
      ["jobs", 0n, 10n],
      ["storage_mb", 0n, 100n],
    ]);
    const storage = quotas.find((quota) => quota.metric === "storage_mb");
    expect(storage?.periodStart).toBeUndefined();
    expect(storage?.resetsAt).toBeUndefined();
  });
});
