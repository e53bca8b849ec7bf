import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql } from "slonik";
import { z } from "zod";
import { SubscriptionStatus } from "../../gen/entitlements/v1/subscription_pb.js";
import { seedCatalog } from "../../src/db/seed.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { DAY_MS } from "../support/clock.ts";
import { createTestService, type TestService } from "../support/service.ts";

let service: TestService;
beforeAll(async () => {
  service = await createTestService();
  // Pro offers a 14-day trial.
  await seedCatalog(service.pool, { ...defaultCatalog, plans: defaultCatalog.plans.map((plan) => (plan.code === "pro" ? { ...plan, trialDays: 14 } : plan)) });
  await service.catalog.refresh();
});
beforeEach(() => service.clock.set("2026-03-15T12:00:00Z"));

const planOf = async (userId: string) => (await service.client.getPlan({ userId })).plan?.code;

async function actions(userId: string): Promise<string[]> {
  return service.pool.anyFirst(sql.type(z.object({ action: z.string() }))`
    select action from audit_events where target_user_id = ${userId} order by id
  `) as Promise<string[]>;
}

describe("trials", () => {
  it("put the account on the plan for the plan's trial_days, then back on the default plan, with no job running", async () => {
    const userId = "trier";
    const { subscription, plan } = await service.client.startTrial({ userId, planCode: "pro" });
    expect(plan?.code).toBe("pro");
    expect(subscription).toMatchObject({ planCode: "pro", status: SubscriptionStatus.TRIALING });
    expect(timestampDate(subscription!.trialEndsAt!)).toEqual(new Date("2026-03-29T12:00:00Z"));
    const during = await service.client.getPlan({ userId });
    expect(during).toMatchObject({ plan: { code: "pro" }, subscription: { status: SubscriptionStatus.TRIALING } });
    expect(timestampDate(during.subscription!.currentPeriodEnd!)).toEqual(new Date("2026-03-29T12:00:00Z"));
    expect((await service.client.hasFeature({ userId, feature: "priority_support" })).enabled).toBe(true);
    service.clock.set("2026-03-29T12:00:00Z");
    const after = await service.client.getPlan({ userId });
    expect(after.plan?.code).toBe("free");
    expect(after.subscription).toBeUndefined();
    expect((await service.client.hasFeature({ userId, feature: "priority_support" })).enabled).toBe(false);
  });

  it("give back the subscription the account had, while it is still current", async () => {
    const userId = "pro-tries-enterprise";
    await service.client.upgradePlan({ userId, planCode: "pro", durationDays: 30 });
    await service.client.startTrial({ userId, planCode: "enterprise", days: 7 });
    expect(await planOf(userId)).toBe("enterprise");
    service.clock.advance(7 * DAY_MS);
    expect(await planOf(userId)).toBe("pro");
    // Had the subscription lapsed meanwhile, the default plan.
    service.clock.advance(30 * DAY_MS);
    expect(await planOf(userId)).toBe("free");
  });

  it("convert when UpgradePlan moves to the trial's plan during the trial", async () => {
    const userId = "converted";
    await service.client.startTrial({ userId, planCode: "pro", days: 3 });
    const { subscription } = await service.client.upgradePlan({ userId, planCode: "pro" });
    expect(subscription).toMatchObject({ planCode: "pro", status: SubscriptionStatus.ACTIVE });
    expect(subscription?.trialEndsAt).toBeUndefined();
    service.clock.advance(10 * DAY_MS);
    expect(await service.client.getPlan({ userId })).toMatchObject({ plan: { code: "pro" }, subscription: { status: SubscriptionStatus.ACTIVE } });
    const converted = await service.pool.oneFirst(sql.type(z.object({ converted: z.boolean() }))`select converted from trials where user_id = ${userId}`);
    expect(converted).toBe(true);
    expect(await actions(userId)).toEqual(["trial.start", "plan.change"]);
  });
});

describe("scheduled changes", () => {
  it("take effect at the end of the billing period for every answer, and are written down once", async () => {
    const userId = "downgrader";
    await service.client.upgradePlan({ userId, planCode: "enterprise" });
    const { scheduledChange } = await service.client.schedulePlanChange({ userId, planCode: "pro", when: { case: "atPeriodEnd", value: true } });
    expect(scheduledChange?.planCode).toBe("pro");
    expect(timestampDate(scheduledChange!.effectiveAt!)).toEqual(new Date("2026-04-15T12:00:00Z"));
    const before = await service.client.getPlan({ userId });
    expect(before.plan?.code).toBe("enterprise");
    expect(before.scheduledChange?.planCode).toBe("pro");

    service.clock.set("2026-04-15T12:00:00Z");
    const after = await service.client.getPlan({ userId });
    expect(after).toMatchObject({ plan: { code: "pro" }, subscription: { planCode: "pro", status: SubscriptionStatus.ACTIVE } });
    expect(after.scheduledChange).toBeUndefined();
    expect(timestampDate(after.subscription!.startedAt!)).toEqual(new Date("2026-04-15T12:00:00Z"));
    expect(await actions(userId)).toEqual(["plan.change", "plan_change.schedule"]);

    expect(await service.planChanges.writeDownDueChanges()).toBeGreaterThanOrEqual(1);
    expect(await service.planChanges.writeDownDueChanges()).toBe(0);
    expect(await actions(userId)).toEqual(["plan.change", "plan_change.schedule", "plan_change.apply"]);
    const written = await service.client.getPlan({ userId });
    expect(written.subscription).toMatchObject({ planCode: "pro" });
    expect(timestampDate(written.subscription!.startedAt!)).toEqual(new Date("2026-04-15T12:00:00Z"));
  });

  it("to the default plan cancel the subscription, and the next write records them", async () => {
    const userId = "canceller";
    await service.client.upgradePlan({ userId, planCode: "pro" });
    await service.client.schedulePlanChange({ userId, planCode: "free", when: { case: "atPeriodEnd", value: true } });
    service.clock.set("2026-04-16T00:00:00Z");
    const cancelled = await service.client.getPlan({ userId });
    expect(cancelled.plan?.code).toBe("free");
    expect(cancelled.subscription).toBeUndefined();
    await service.client.upgradePlan({ userId, planCode: "enterprise" });
    expect(await actions(userId)).toEqual(["plan.change", "plan_change.schedule", "plan_change.apply", "plan.change"]);
    const ended = await service.pool.anyFirst(sql.type(z.object({ ended_at: z.number().nullable() }))`
      select ended_at from subscriptions where user_id = ${userId} order by id
    `);
    expect(ended.map((ms) => (ms === null ? null : new Date(ms).toISOString()))).toEqual(["2026-04-15T12:00:00.000Z", null]);
  });

  it("at a set time, replaced by a later one, and cancelled", async () => {
    const userId = "rescheduler";
    const at = (days: number) => ({ case: "at" as const, value: timestampFromDate(new Date(service.clock.now().getTime() + days * DAY_MS)) });
    await service.client.schedulePlanChange({ userId, planCode: "pro", when: at(2) });
    await service.client.schedulePlanChange({ userId, planCode: "enterprise", when: at(3) });
    expect((await service.client.getPlan({ userId })).scheduledChange?.planCode).toBe("enterprise");
    const { cancelled } = await service.client.cancelScheduledChange({ userId });
    expect(cancelled?.planCode).toBe("enterprise");
    expect((await service.client.cancelScheduledChange({ userId })).cancelled).toBeUndefined();
    service.clock.advance(5 * DAY_MS);
    expect(await planOf(userId)).toBe("free");
    expect(await actions(userId)).toEqual(["plan_change.schedule", "plan_change.schedule", "plan_change.cancel"]);
  });

  it("at the end of a trial, during one", async () => {
    const userId = "trial-then-enterprise";
    await service.client.startTrial({ userId, planCode: "pro", days: 5 });
    const { scheduledChange } = await service.client.schedulePlanChange({ userId, planCode: "enterprise", when: { case: "atPeriodEnd", value: true } });
    expect(timestampDate(scheduledChange!.effectiveAt!)).toEqual(new Date("2026-03-20T12:00:00Z"));
    service.clock.set("2026-03-20T12:00:00Z");
    expect(await planOf(userId)).toBe("enterprise");
  });
});
