import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql } from "slonik";
import { z } from "zod";
import { EntitlementSource } from "../../gen/entitlements/v1/terms_pb.js";
import { DAY_MS } from "../support/clock.ts";
import { createTestService, type TestService } from "../support/service.ts";

let service: TestService;
beforeAll(async () => {
  service = await createTestService();
});
beforeEach(() => service.clock.set("2026-03-15T12:00:00Z"));

const inDays = (days: number) => timestampFromDate(new Date(service.clock.now().getTime() + days * DAY_MS));

/** The account's audit trail as "actor action" (AdminService's view of it is tested there). */
async function auditActions(userId: string): Promise<string[]> {
  const rows = await service.pool.any(sql.type(z.object({ action: z.string(), actor_id: z.string() }))`
    select action, actor_id from audit_events where target_user_id = ${userId} order by id
  `);
  return rows.map((row) => `${row.actor_id} ${row.action}`);
}

describe("feature overrides", () => {
  it("beat the plan until they expire, with no job running", async () => {
    const userId = "sso-deal";
    expect(await service.client.hasFeature({ userId, feature: "sso" })).toMatchObject({ enabled: false, source: EntitlementSource.PLAN });
    const { override } = await service.client.setFeatureOverride({ userId, feature: "sso", enabled: true, expiresAt: inDays(30), reason: "enterprise pilot" });
    expect(override).toMatchObject({ userId, target: { case: "feature", value: "sso" }, enabled: true, reason: "enterprise pilot" });
    expect(await service.client.hasFeature({ userId, feature: "sso" })).toMatchObject({ enabled: true, source: EntitlementSource.OVERRIDE, planCode: "free" });
    // It survives a plan change: an override beats every plan.
    await service.client.upgradePlan({ userId, planCode: "pro" });
    expect((await service.client.hasFeature({ userId, feature: "sso" })).enabled).toBe(true);
    service.clock.advance(30 * DAY_MS);
    expect(await service.client.hasFeature({ userId, feature: "sso" })).toMatchObject({ enabled: false, source: EntitlementSource.PLAN, planCode: "pro" });
    expect((await service.client.listOverrides({ userId })).overrides).toEqual([]);
  });

  it("can switch a feature off that the plan has, and clearing gives the plan back", async () => {
    const userId = "no-api";
    await service.client.setFeatureOverride({ userId, feature: "api_access", enabled: false, reason: "abuse under review" });
    expect(await service.client.hasFeature({ userId, feature: "api_access" })).toMatchObject({ enabled: false, source: EntitlementSource.OVERRIDE });
    const { cleared } = await service.client.clearOverride({ userId, target: { case: "feature", value: "api_access" } });
    expect(cleared?.enabled).toBe(false);
    expect(await service.client.hasFeature({ userId, feature: "api_access" })).toMatchObject({ enabled: true, source: EntitlementSource.PLAN });
    expect((await service.client.clearOverride({ userId, target: { case: "feature", value: "api_access" } })).cleared).toBeUndefined();
    expect(await auditActions(userId)).toEqual(["service override.set", "service override.clear"]);
  });

  it("clearing for a user never seen clears nothing and records no account", async () => {
    expect((await service.client.clearOverride({ userId: "never-seen", target: { case: "feature", value: "sso" } })).cleared).toBeUndefined();
    expect(await service.pool.exists(sql.unsafe`select 1 from accounts where user_id = 'never-seen'`)).toBe(false);
  });
});

describe("quota overrides", () => {
  it("set the limit every check and increment uses, and say so", async () => {
    const userId = "big-jobs";
    await service.client.setQuotaOverride({ userId, metric: "jobs", limit: 2000n, reason: "sales deal #42" });
    const check = await service.client.checkQuota({ userId, metric: "jobs", amount: 1500n });
    expect(check.allowed).toBe(true);
    expect(check.quota).toMatchObject({ limit: 2000n, remaining: 2000n, limitSource: EntitlementSource.OVERRIDE });
    const { quota } = await service.client.incrementUsage({ userId, metric: "jobs", amount: 1500n });
    expect(quota).toMatchObject({ used: 1500n, limit: 2000n, remaining: 500n, limitSource: EntitlementSource.OVERRIDE });
    const usage = await service.client.getUsage({ userId });
    expect(usage.quotas.find((q) => q.metric === "jobs")).toMatchObject({ limit: 2000n, limitSource: EntitlementSource.OVERRIDE });
    expect(usage.quotas.find((q) => q.metric === "api_calls")).toMatchObject({ limit: 100n, limitSource: EntitlementSource.PLAN });
  });

  it("without a limit is unlimited", async () => {
    const userId = "no-limit";
    await service.client.setQuotaOverride({ userId, metric: "jobs", reason: "internal test account" });
    const { quota } = await service.client.incrementUsage({ userId, metric: "jobs", amount: 1_000_000n });
    expect(quota).toMatchObject({ used: 1_000_000n, limitSource: EntitlementSource.OVERRIDE });
    expect(quota?.limit).toBeUndefined();
    const { overrides } = await service.client.listOverrides({ userId });
    expect(overrides).toHaveLength(1);
    expect(overrides[0]).toMatchObject({ target: { case: "metric", value: "jobs" }, reason: "internal test account" });
    expect(overrides[0]?.limit).toBeUndefined();
    expect(overrides[0]?.enabled).toBeUndefined();
  });

  it("a second override of the same metric replaces the first", async () => {
    const userId = "replaced";
    await service.client.setQuotaOverride({ userId, metric: "jobs", limit: 50n, reason: "first" });
    await service.client.setQuotaOverride({ userId, metric: "jobs", limit: 5n, reason: "second" });
    expect((await service.client.listOverrides({ userId })).overrides.map((o) => [o.limit, o.reason])).toEqual([[5n, "second"]]);
    expect((await service.client.checkQuota({ userId, metric: "jobs", amount: 6n })).allowed).toBe(false);
  });
});

describe("usage grants", () => {
  it("add to the allowance, are drawn once it is spent, and stay spent across the reset", async () => {
    const userId = "topped-up";
    const { grant, replayed } = await service.client.grantUsage({ userId, metric: "jobs", amount: 5n, idempotencyKey: "outage-1", reason: "outage credit" });
    expect(replayed).toBe(false);
    expect(grant).toMatchObject({ metric: "jobs", amount: 5n, remaining: 5n, reason: "outage credit" });
    const before = await service.client.checkQuota({ userId, metric: "jobs", amount: 15n });
    expect(before.allowed).toBe(true);
    expect(before.quota).toMatchObject({ used: 0n, limit: 10n, remaining: 15n, grantRemaining: 5n });
    expect((await service.client.checkQuota({ userId, metric: "jobs", amount: 16n })).allowed).toBe(false);

    const { quota } = await service.client.incrementUsage({ userId, metric: "jobs", amount: 12n });
    expect(quota).toMatchObject({ used: 12n, limit: 10n, remaining: 3n, grantRemaining: 3n });
    const refused = await service.client.incrementUsage({ userId, metric: "jobs", amount: 4n }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Error);
    expect((await service.client.incrementUsage({ userId, metric: "jobs", amount: 3n })).quota).toMatchObject({ used: 15n, remaining: 0n, grantRemaining: 0n });

    // April: a fresh allowance; the grant stays spent.
    service.clock.set("2026-04-02T00:00:00Z");
    expect((await service.client.checkQuota({ userId, metric: "jobs" })).quota).toMatchObject({ used: 0n, remaining: 10n, grantRemaining: 0n });
    const listed = await service.client.listGrants({ userId, includeSpent: true });
    expect(listed.grants.map((g) => [g.amount, g.remaining])).toEqual([[5n, 0n]]);
    expect((await service.client.listGrants({ userId })).grants).toEqual([]);
  });

  it("carry over while unspent, and are drawn earliest expiry first", async () => {
    const userId = "two-grants";
    const lasting = await service.client.grantUsage({ userId, metric: "jobs", amount: 4n, idempotencyKey: "a", reason: "no expiry" });
    const soon = await service.client.grantUsage({ userId, metric: "jobs", amount: 4n, expiresAt: inDays(40), idempotencyKey: "b", reason: "expires" });
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 13n });
    const grants = new Map((await service.client.listGrants({ userId, includeSpent: true })).grants.map((g) => [g.id, g.remaining]));
    expect(grants.get(soon.grant!.id)).toBe(1n);
    expect(grants.get(lasting.grant!.id)).toBe(4n);
    service.clock.advance(20 * DAY_MS); // April: the allowance is back, grants carry over
    expect((await service.client.checkQuota({ userId, metric: "jobs" })).quota).toMatchObject({ remaining: 15n, grantRemaining: 5n });
    service.clock.advance(21 * DAY_MS); // past the first grant's expiry
    expect((await service.client.checkQuota({ userId, metric: "jobs" })).quota).toMatchObject({ remaining: 14n, grantRemaining: 4n });
  });

  it("are granted once per key, and revoking leaves what they gave counted", async () => {
    const userId = "revoked";
    const first = await service.client.grantUsage({ userId, metric: "api_calls", amount: 50n, idempotencyKey: "k", reason: "support" });
    const again = await service.client.grantUsage({ userId, metric: "api_calls", amount: 50n, idempotencyKey: "k", reason: "support" });
    expect(again).toMatchObject({ replayed: true, grant: { id: first.grant!.id } });
    await service.client.incrementUsage({ userId, metric: "api_calls", amount: 120n });
    const { grant } = await service.client.revokeGrant({ userId, grantId: first.grant!.id });
    expect(grant).toMatchObject({ amount: 50n, remaining: 0n });
    expect(grant?.revokedAt).toBeDefined();
    expect((await service.client.checkQuota({ userId, metric: "api_calls" })).quota).toMatchObject({ used: 120n, remaining: 0n, grantRemaining: 0n });
    await service.client.revokeGrant({ userId, grantId: first.grant!.id });
    expect(await auditActions(userId)).toEqual(["service grant.create", "service grant.revoke"]);
  });

  it("count under an override's limit too, and not for an unlimited metric", async () => {
    const userId = "grant-and-override";
    await service.client.setQuotaOverride({ userId, metric: "jobs", limit: 2n, reason: "tight" });
    await service.client.grantUsage({ userId, metric: "jobs", amount: 3n, idempotencyKey: "g", reason: "credit" });
    expect((await service.client.incrementUsage({ userId, metric: "jobs", amount: 5n })).quota).toMatchObject({ used: 5n, remaining: 0n, limitSource: EntitlementSource.OVERRIDE });
    await service.client.grantUsage({ userId, metric: "compute_minutes", amount: 3n, idempotencyKey: "c", reason: "credit" });
    const { quota } = await service.client.incrementUsage({ userId, metric: "compute_minutes", amount: 7n });
    expect(quota).toMatchObject({ used: 7n, grantRemaining: 0n });
    expect(quota?.remaining).toBeUndefined();
    expect((await service.client.listGrants({ userId })).grants.find((g) => g.metric === "compute_minutes")?.remaining).toBe(3n);
  });

  it("are drawn exactly when racing increments spend the allowance and the grants together", async () => {
    const userId = "racing-grants";
    await service.client.grantUsage({ userId, metric: "jobs", amount: 15n, idempotencyKey: "race", reason: "race" });
    const results = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) => service.client.incrementUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: i % 2 === 0 ? `key-${i}` : "" })),
    );
    expect(results.filter((result) => result.status === "fulfilled")).toHaveLength(25);
    expect((await service.client.checkQuota({ userId, metric: "jobs" })).quota).toMatchObject({ used: 25n, remaining: 0n, grantRemaining: 0n });
  });
});
