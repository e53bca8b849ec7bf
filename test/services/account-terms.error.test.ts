import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { sql } from "slonik";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { expectInvalid, refusal } from "../support/refusals.ts";
import { createTestService, type TestService } from "../support/service.ts";

let service: TestService;
beforeAll(async () => {
  service = await createTestService();
});
beforeEach(() => service.clock.set("2026-03-15T12:00:00Z"));

const past = () => timestampFromDate(new Date(service.clock.now().getTime() - 1000));

describe("overrides refuse", () => {
  it("names that are not in the catalog", async () => {
    await expectInvalid(service.client.setFeatureOverride({ userId: "u", feature: "teleport", enabled: true, reason: "r" }), "feature");
    await expectInvalid(service.client.setQuotaOverride({ userId: "u", metric: "rockets", limit: 1n, reason: "r" }), "metric");
    await expectInvalid(service.client.setFeatureOverride({ userId: "u", feature: "Bad Name", enabled: true, reason: "r" }), "feature");
  });

  it("a missing reason, a past expiry and a negative limit", async () => {
    await expectInvalid(service.client.setFeatureOverride({ userId: "u", feature: "sso", enabled: true, reason: "  " }), "reason");
    await expectInvalid(service.client.setFeatureOverride({ userId: "u", feature: "sso", enabled: true, reason: "r", expiresAt: past() }), "expires_at");
    await expectInvalid(service.client.setQuotaOverride({ userId: "u", metric: "jobs", limit: -1n, reason: "r" }), "limit");
    await expectInvalid(
      service.client.setQuotaOverride({ userId: "u", metric: "jobs", limit: 1n, reason: "r", expiresAt: { seconds: 253402300800n, nanos: 0 } }),
      "expires_at",
    );
    await expectInvalid(service.client.clearOverride({ userId: "u" }), "target");
    expect((await service.client.listOverrides({ userId: "u" })).overrides).toEqual([]);
  });

  it("nothing for a suspended account: it is denied everything, overrides included", async () => {
    const userId = "suspended-with-override";
    await service.client.setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "deal" });
    await service.client.grantUsage({ userId, metric: "jobs", amount: 5n, idempotencyKey: "k", reason: "credit" });
    await service.pool.query(sql.unsafe`update accounts set status = 'suspended', suspended_reason = 'fraud' where user_id = ${userId}`);
    service.entitlements.forget(userId);
    expect((await service.client.hasFeature({ userId, feature: "sso" })).enabled).toBe(false);
    expect((await service.client.checkQuota({ userId, metric: "jobs" })).allowed).toBe(false);
    expect((await refusal(service.client.incrementUsage({ userId, metric: "jobs", amount: 1n }))).code).toBe(Code.PermissionDenied);
  });
});

describe("grants refuse", () => {
  it("gauges, unknown metrics, amounts out of range and a missing key", async () => {
    await expectInvalid(service.client.grantUsage({ userId: "u", metric: "storage_mb", amount: 5n, idempotencyKey: "k", reason: "r" }), "metric");
    await expectInvalid(service.client.grantUsage({ userId: "u", metric: "rockets", amount: 5n, idempotencyKey: "k", reason: "r" }), "metric");
    await expectInvalid(service.client.grantUsage({ userId: "u", metric: "jobs", amount: 0n, idempotencyKey: "k", reason: "r" }), "amount");
    await expectInvalid(service.client.grantUsage({ userId: "u", metric: "jobs", amount: -3n, idempotencyKey: "k", reason: "r" }), "amount");
    await expectInvalid(service.client.grantUsage({ userId: "u", metric: "jobs", amount: 2n ** 53n, idempotencyKey: "k", reason: "r" }), "amount");
    await expectInvalid(service.client.grantUsage({ userId: "u", metric: "jobs", amount: 5n, idempotencyKey: "", reason: "r" }), "idempotency_key");
    await expectInvalid(service.client.grantUsage({ userId: "u", metric: "jobs", amount: 5n, idempotencyKey: "k", reason: "" }), "reason");
    await expectInvalid(service.client.grantUsage({ userId: "u", metric: "jobs", amount: 5n, idempotencyKey: "k", reason: "r", expiresAt: past() }), "expires_at");
    expect((await service.client.listGrants({ userId: "u", includeSpent: true })).grants).toEqual([]);
  });

  it("a key reused for another grant, and grants nothing twice", async () => {
    const userId = "key-reuse";
    await service.client.grantUsage({ userId, metric: "jobs", amount: 5n, idempotencyKey: "once", reason: "r" });
    const error = await refusal(service.client.grantUsage({ userId, metric: "jobs", amount: 6n, idempotencyKey: "once", reason: "r" }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
    expect((await refusal(service.client.grantUsage({ userId, metric: "api_calls", amount: 5n, idempotencyKey: "once", reason: "r" }))).code).toBe(
      Code.FailedPrecondition,
    );
    expect((await service.client.listGrants({ userId })).grants.map((g) => g.amount)).toEqual([5n]);
  });

  it("revoking an unknown or malformed grant id", async () => {
    await service.client.grantUsage({ userId: "has-grants", metric: "jobs", amount: 5n, idempotencyKey: "k", reason: "r" });
    const unknown = await refusal(service.client.revokeGrant({ userId: "has-grants", grantId: "00000000-0000-4000-8000-000000000000" }));
    expect(unknown.code).toBe(Code.NotFound);
    await expectInvalid(service.client.revokeGrant({ userId: "has-grants", grantId: "1; drop table usage_grants" }), "grant_id");
    expect((await refusal(service.client.revokeGrant({ userId: "never-seen", grantId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.NotFound);
  });

  it("an increment that the allowance and the grants together cannot cover, counting nothing", async () => {
    const userId = "short";
    await service.client.grantUsage({ userId, metric: "jobs", amount: 3n, idempotencyKey: "k", reason: "r" });
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 8n });
    const error = await refusal(service.client.incrementUsage({ userId, metric: "jobs", amount: 6n, idempotencyKey: "big" }));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect((await service.client.checkQuota({ userId, metric: "jobs" })).quota).toMatchObject({ used: 8n, remaining: 5n, grantRemaining: 3n });
    expect((await service.client.listGrants({ userId })).grants[0]?.remaining).toBe(3n);
  });
});
