import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { seedCatalog } from "../../src/db/seed.ts";
import type { CatalogDefinition } from "../../src/domain/catalog.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { createTestService, type TestService } from "../support/service.ts";

/** Grandfathering: a subscription keeps the terms of the plan version it started on. */
let service: TestService;
beforeAll(async () => {
  service = await createTestService("2026-06-10T08:00:00Z");
});

/** The default catalog with pro at 24.99 and 800 jobs a month. */
const proRaised: CatalogDefinition = {
  ...defaultCatalog,
  plans: defaultCatalog.plans.map((plan) =>
    plan.code === "pro"
      ? { ...plan, priceCents: 2499n, quotas: plan.quotas.map((quota) => (quota.metric === "jobs" ? { ...quota, limit: 800n } : quota)) }
      : plan,
  ),
};

describe("plan versions", () => {
  it("keep a subscriber on the terms they signed up for, and give newcomers the latest", async () => {
    const before = await service.client.upgradePlan({ userId: "early", planCode: "pro" });
    expect(before.plan).toMatchObject({ version: 1, priceCents: 1999n });
    expect(before.subscription?.planVersion).toBe(1);

    // Published through another replica: this one's catalog has not seen version 2 yet.
    await seedCatalog(service.pool, proRaised);

    const late = await service.client.upgradePlan({ userId: "late", planCode: "pro" });
    expect(late.subscription?.planVersion).toBe(2);
    expect(late.plan).toMatchObject({ code: "pro", version: 2, priceCents: 2499n });
    expect((await service.client.checkQuota({ userId: "late", metric: "jobs" })).quota?.limit).toBe(800n);

    const early = await service.client.getPlan({ userId: "early" });
    expect(early.plan).toMatchObject({ version: 1, priceCents: 1999n });
    expect((await service.client.checkQuota({ userId: "early", metric: "jobs" })).quota?.limit).toBe(500n);
    await service.client.incrementUsage({ userId: "early", metric: "jobs", amount: 500n });
    await expect(service.client.incrementUsage({ userId: "early", metric: "jobs", amount: 1n })).rejects.toThrow(/quota exceeded/);

    // The catalog lists the latest version.
    expect((await service.client.listPlans({})).plans.find((plan) => plan.code === "pro")).toMatchObject({ version: 2, priceCents: 2499n });
  });

  it("archive a plan the catalog drops: never offered again, kept by its subscribers", async () => {
    await service.client.upgradePlan({ userId: "loyal", planCode: "enterprise" });
    await seedCatalog(service.pool, { ...defaultCatalog, plans: defaultCatalog.plans.filter((plan) => plan.code !== "enterprise") });
    await service.catalog.refresh();
    expect((await service.client.listPlans({ includeHidden: true })).plans.map((plan) => plan.code)).not.toContain("enterprise");
    const refused = await service.client.upgradePlan({ userId: "newcomer", planCode: "enterprise" }).catch((error: unknown) => ConnectError.from(error));
    expect(refused).toMatchObject({ code: Code.FailedPrecondition });
    expect((refused as ConnectError).rawMessage).toContain('plan "enterprise" is archived');
    const loyal = await service.client.getPlan({ userId: "loyal" });
    expect(loyal.plan).toMatchObject({ code: "enterprise", version: 1 });
    expect(await service.client.hasFeature({ userId: "loyal", feature: "sso" })).toMatchObject({ enabled: true, planCode: "enterprise" });
  });

  it("show a subscriber's current billing period, anchored on the start", async () => {
    service.clock.set("2026-01-31T10:00:00Z");
    const started = await service.client.upgradePlan({ userId: "monthly-31st", planCode: "pro" });
    expect(timestampDate(started.subscription!.currentPeriodStart!)).toEqual(new Date("2026-01-31T10:00:00Z"));
    expect(timestampDate(started.subscription!.currentPeriodEnd!)).toEqual(new Date("2026-02-28T10:00:00Z"));
    service.clock.set("2026-03-05T00:00:00Z");
    const { subscription } = await service.client.getPlan({ userId: "monthly-31st" });
    expect([timestampDate(subscription!.currentPeriodStart!), timestampDate(subscription!.currentPeriodEnd!)]).toEqual([
      new Date("2026-02-28T10:00:00Z"),
      new Date("2026-03-31T10:00:00Z"),
    ]);
  });
});
