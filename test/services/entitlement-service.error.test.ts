import { beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, QuotaFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { refusal } from "../support/refusals.ts";
import { createTestService, type TestService } from "../support/service.ts";

let service: TestService;
beforeAll(async () => {
  service = await createTestService();
});

describe("invalid_argument", () => {
  it.each([
    ["an empty user id", { userId: "", metric: "jobs", amount: 1n }, "user_id"],
    ["a user id over 128 characters", { userId: "u".repeat(129), metric: "jobs", amount: 1n }, "user_id"],
    ["a zero amount", { userId: "u", metric: "jobs", amount: 0n }, "amount"],
    ["a negative counter amount", { userId: "u", metric: "jobs", amount: -1n }, "amount"],
    ["an oversize amount", { userId: "u", metric: "jobs", amount: 2n ** 60n }, "amount"],
    ["an oversize idempotency key", { userId: "u", metric: "jobs", amount: 1n, idempotencyKey: "k".repeat(256) }, "idempotency_key"],
    ["a malformed metric name", { userId: "u", metric: "Jobs; drop table", amount: 1n }, "metric"],
  ])("IncrementUsage refuses %s, naming the field", async (_, request, field) => {
    const error = await refusal(service.client.incrementUsage(request));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual([field]);
  });

  it("counts nothing for a refused request", async () => {
    await refusal(service.client.incrementUsage({ userId: "nothing", metric: "jobs", amount: -3n }));
    expect((await service.client.checkQuota({ userId: "nothing", metric: "jobs" })).quota?.used).toBe(0n);
  });

  it("refuses a duration out of range", async () => {
    for (const durationDays of [0, -5, 3651]) {
      const error = await refusal(service.client.upgradePlan({ userId: "u", planCode: "pro", durationDays }));
      expect(error.code).toBe(Code.InvalidArgument);
    }
    expect((await service.client.getPlan({ userId: "u" })).plan?.code).toBe("free");
  });

  it("is the answer of every user-scoped RPC to an empty user id", async () => {
    const calls = [
      () => service.client.getPlan({ userId: "" }),
      () => service.client.hasFeature({ userId: "", feature: "api_access" }),
      () => service.client.checkQuota({ userId: "", metric: "jobs" }),
      () => service.client.upgradePlan({ userId: "", planCode: "pro" }),
      () => service.client.getUsage({ userId: "" }),
    ];
    for (const call of calls) {
      expect((await refusal(call())).code).toBe(Code.InvalidArgument);
    }
  });

  it("refuses a negative counter check", async () => {
    expect((await refusal(service.client.checkQuota({ userId: "u", metric: "jobs", amount: -1n }))).code).toBe(Code.InvalidArgument);
  });
});

describe("not_found", () => {
  it("names an unknown metric", async () => {
    const error = await refusal(service.client.incrementUsage({ userId: "u", metric: "teleports", amount: 1n }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toContain("teleports");
    expect((await refusal(service.client.checkQuota({ userId: "u", metric: "teleports" }))).code).toBe(Code.NotFound);
  });

  it("names an unknown plan and changes nothing", async () => {
    const error = await refusal(service.client.upgradePlan({ userId: "nf", planCode: "platinum" }));
    expect(error.code).toBe(Code.NotFound);
    expect((await service.client.getPlan({ userId: "nf" })).subscription).toBeUndefined();
  });
});

describe("resource_exhausted", () => {
  it("carries QuotaFailure details and counts nothing", async () => {
    const userId = "exhausted";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 7n });
    const error = await refusal(service.client.incrementUsage({ userId, metric: "jobs", amount: 4n }));
    expect(error.code).toBe(Code.ResourceExhausted);
    const [failure] = error.findDetails(QuotaFailureSchema);
    expect(failure?.violations[0]).toMatchObject({ subject: `user:${userId}`, quotaMetric: "jobs", quotaValue: 10n });
    const [info] = error.findDetails(ErrorInfoSchema);
    expect(info).toMatchObject({ reason: "QUOTA_EXCEEDED", metadata: { used: "7", limit: "10", requested: "4" } });
    expect((await service.client.checkQuota({ userId, metric: "jobs" })).quota?.used).toBe(7n);
  });
});

describe("failed_precondition", () => {
  it("refuses a key reused with another amount or metric", async () => {
    const userId = "reuse";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "once" });
    for (const request of [
      { userId, metric: "jobs", amount: 2n, idempotencyKey: "once" },
      { userId, metric: "api_calls", amount: 1n, idempotencyKey: "once" },
    ]) {
      const error = await refusal(service.client.incrementUsage(request));
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
    }
    const usage = await service.client.getUsage({ userId });
    expect(usage.quotas.filter((quota) => quota.used > 0n).map((quota) => [quota.metric, quota.used])).toEqual([["jobs", 1n]]);
  });
});
