import { beforeAll, describe, expect, it } from "vitest";
import type { ComposedService } from "../../src/compose.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { feedEventsOf } from "../support/feed-events.ts";
import { composeTestService, inMemoryClient } from "../support/service.ts";

let database: TestDatabase;
let service: ComposedService;
const clock = new TestClock("2026-03-15T12:00:00Z");
const client = () => inMemoryClient(service.served);

beforeAll(async () => {
  database = await createTestDatabase();
  service = await composeTestService(database.pool, clock);
});

const eventsOf = (userId: string) => feedEventsOf(database.pool, userId);

describe("each committed change gives exactly one change feed event", () => {
  it("for plan changes, trials and scheduled changes, numbered by the account's revision", async () => {
    const userId = "ev-plans";
    await client().startTrial({ userId, planCode: "pro", days: 3 });
    await client().upgradePlan({ userId, planCode: "pro" });
    await client().schedulePlanChange({ userId, planCode: "enterprise", when: { case: "at", value: { seconds: BigInt(Date.parse("2026-03-20T00:00:00Z") / 1000), nanos: 0 } } });
    await client().cancelScheduledChange({ userId });
    await client().cancelScheduledChange({ userId });
    expect(await eventsOf(userId)).toEqual([
      "1 entitlements.trial_started",
      "2 entitlements.plan_changed",
      "3 entitlements.plan_change_scheduled",
      "4 entitlements.plan_change_cancelled",
    ]);
  });

  it("for a scheduled change when it is written down, not before", async () => {
    const userId = "ev-due";
    await client().upgradePlan({ userId, planCode: "pro" });
    await client().schedulePlanChange({ userId, planCode: "enterprise", when: { case: "at", value: { seconds: BigInt(Date.parse("2026-03-16T00:00:00Z") / 1000), nanos: 0 } } });
    expect(await service.planChanges.writeDownDueChanges()).toBe(0);
    clock.set("2026-03-16T00:00:01Z");
    expect(await service.planChanges.writeDownDueChanges()).toBe(1);
    expect(await eventsOf(userId)).toEqual(["1 entitlements.plan_changed", "2 entitlements.plan_change_scheduled", "3 entitlements.plan_changed"]);
    clock.set("2026-03-15T12:00:00Z");
  });

  it("for overrides and grants, but not for a replayed grant", async () => {
    const userId = "ev-terms";
    await client().setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "pilot" });
    await client().setQuotaOverride({ userId, metric: "jobs", limit: 50n, reason: "cap" });
    await client().clearOverride({ userId, target: { case: "feature", value: "sso" } });
    const { grant } = await client().grantUsage({ userId, metric: "jobs", amount: 5n, reason: "goodwill", idempotencyKey: "g-1" });
    await client().grantUsage({ userId, metric: "jobs", amount: 5n, reason: "goodwill", idempotencyKey: "g-1" });
    await client().revokeGrant({ userId, grantId: grant!.id });
    expect(await eventsOf(userId)).toEqual([
      "1 entitlements.override_set",
      "2 entitlements.override_set",
      "3 entitlements.override_cleared",
      "4 entitlements.grant_added",
      "5 entitlements.grant_revoked",
    ]);
  });

  it("for suspension, reactivation and usage resets; none for what changes no entitlement", async () => {
    const userId = "ev-admin";
    await client().incrementUsage({ userId, metric: "jobs", amount: 2n });
    await client().refundUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "r-1", reason: "failed job" });
    await service.administration.suspend("root", userId, "fraud");
    await service.administration.suspend("root", userId, "fraud, confirmed");
    await service.administration.reactivate("root", userId);
    await service.administration.reactivate("root", userId);
    await service.administration.resetUsage("root", userId, undefined, "support");
    await service.administration.revokeSessions("root", userId);
    await service.administration.setSuperadmin("root", userId, true);
    expect(await eventsOf(userId)).toEqual(["1 account.suspended", "2 account.reactivated", "3 usage.reset"]);
  });
});

describe("what ends at its own time gives its event when the sweep finds it due, once", () => {
  it("a trial, an override, a grant (unless spent or revoked first) and a subscription", async () => {
    const userId = "ev-lapses";
    const at = (iso: string) => ({ seconds: BigInt(Date.parse(iso) / 1000), nanos: 0 });
    await client().startTrial({ userId, planCode: "pro", days: 1 });
    await client().setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "pilot", expiresAt: at("2026-03-15T18:00:00Z") });
    await client().grantUsage({ userId, metric: "jobs", amount: 5n, reason: "goodwill", idempotencyKey: "lapse-1", expiresAt: at("2026-03-15T20:00:00Z") });
    const revoked = await client().grantUsage({ userId, metric: "jobs", amount: 5n, reason: "goodwill", idempotencyKey: "lapse-2", expiresAt: at("2026-03-15T20:00:00Z") });
    await client().revokeGrant({ userId, grantId: revoked.grant!.id });
    const other = "ev-lapses-sub";
    await client().upgradePlan({ userId: other, planCode: "pro", durationDays: 2 });
    const before = await eventsOf(userId);
    expect(await service.lapses.announceDue()).toBe(0);

    clock.set("2026-03-15T19:00:00Z");
    expect(await service.lapses.announceDue()).toBe(1);
    clock.set("2026-03-16T12:00:01Z");
    expect(await service.lapses.announceDue()).toBe(2);
    expect(await service.lapses.announceDue()).toBe(0);
    expect((await eventsOf(userId)).slice(before.length)).toEqual([
      "6 entitlements.override_expired",
      "7 entitlements.grant_expired",
      "8 entitlements.trial_ended",
    ]);
    clock.set("2026-03-17T12:00:01Z");
    expect(await service.lapses.announceDue()).toBe(1);
    expect(await eventsOf(other)).toEqual(["1 entitlements.plan_changed", "2 entitlements.subscription_expired"]);
    clock.set("2026-03-15T12:00:00Z");
  });

  it("an override set again with a later expiry before the first one came due gives no event for the first", async () => {
    const userId = "ev-reset-override";
    const at = (iso: string) => ({ seconds: BigInt(Date.parse(iso) / 1000), nanos: 0 });
    await client().setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "pilot", expiresAt: at("2026-03-15T13:00:00Z") });
    await client().setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "longer", expiresAt: at("2026-03-15T15:00:00Z") });
    clock.set("2026-03-15T14:00:00Z");
    expect(await service.lapses.announceDue()).toBe(0);
    clock.set("2026-03-15T15:00:01Z");
    expect(await service.lapses.announceDue()).toBe(1);
    expect(await eventsOf(userId)).toEqual(["1 entitlements.override_set", "2 entitlements.override_set", "3 entitlements.override_expired"]);
    clock.set("2026-03-15T12:00:00Z");
  });
});
