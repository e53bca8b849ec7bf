import { beforeAll, beforeEach, describe, expect, it } from "vitest";
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

const used = async (userId: string, metric: string) => (await service.client.checkQuota({ userId, metric })).quota?.used;

describe("ConsumeUsage refuses", () => {
  it("an empty list, more than 16 items, a metric twice and amounts out of range", async () => {
    await expectInvalid(service.client.consumeUsage({ userId: "u", items: [] }), "items");
    await expectInvalid(service.client.consumeUsage({ userId: "u", items: Array.from({ length: 17 }, (_, i) => ({ metric: `m${i}`, amount: 1n })) }), "items");
    await expectInvalid(service.client.consumeUsage({ userId: "u", items: [{ metric: "jobs", amount: 1n }, { metric: "jobs", amount: 2n }] }), "items[1].metric");
    await expectInvalid(service.client.consumeUsage({ userId: "u", items: [{ metric: "jobs", amount: 0n }] }), "items[0].amount");
    await expectInvalid(service.client.consumeUsage({ userId: "u", items: [{ metric: "jobs", amount: -1n }] }), "items[0].amount");
    await expectInvalid(service.client.consumeUsage({ userId: "u", items: [{ metric: "jobs", amount: 1n }, { metric: "Jobs!", amount: 1n }] }), "items[1].metric");
    expect((await refusal(service.client.consumeUsage({ userId: "u", items: [{ metric: "jobs", amount: 1n }, { metric: "rockets", amount: 1n }] }))).code).toBe(Code.NotFound);
    expect(await used("u", "jobs")).toBe(0n);
  });

  it("a key reused for other items, or by another RPC, counting nothing more", async () => {
    const userId = "reuser";
    await service.client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 1n }], idempotencyKey: "k" });
    // One after the other: each call starts only when the one before it was refused.
    for (const call of [
      () => service.client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 2n }], idempotencyKey: "k" }),
      () => service.client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 1n }, { metric: "api_calls", amount: 1n }], idempotencyKey: "k" }),
      () => service.client.refundUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "k", reason: "r" }),
    ]) {
      const error = await refusal(call());
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
    }
    expect(await used(userId, "jobs")).toBe(1n);
  });

  it("a refused call keeps no key: the same call later is decided afresh", async () => {
    const userId = "retry-later";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 10n });
    await refusal(service.client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 1n }], idempotencyKey: "later" }));
    service.clock.set("2026-04-01T00:00:00Z");
    expect((await service.client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 1n }], idempotencyKey: "later" })).replayed).toBe(false);
  });

  it("anything for a suspended account", async () => {
    await service.client.incrementUsage({ userId: "frozen", metric: "jobs", amount: 1n });
    await service.pool.query(sql.unsafe`update accounts set status = 'suspended', suspended_reason = 'fraud' where user_id = 'frozen'`);
    const error = await refusal(service.client.consumeUsage({ userId: "frozen", items: [{ metric: "jobs", amount: 1n }] }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect((await refusal(service.client.setUsage({ userId: "frozen", metric: "storage_mb", value: 1n }))).code).toBe(Code.PermissionDenied);
  });
});

describe("RefundUsage refuses", () => {
  it("more than the period counts, gauges, a missing key or reason, and amounts out of range", async () => {
    const userId = "over-refund";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 3n });
    expect((await refusal(service.client.refundUsage({ userId, metric: "jobs", amount: 4n, idempotencyKey: "r", reason: "r" }))).code).toBe(Code.FailedPrecondition);
    await expectInvalid(service.client.refundUsage({ userId, metric: "storage_mb", amount: 1n, idempotencyKey: "r", reason: "r" }), "metric");
    await expectInvalid(service.client.refundUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "", reason: "r" }), "idempotency_key");
    await expectInvalid(service.client.refundUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "r", reason: "" }), "reason");
    await expectInvalid(service.client.refundUsage({ userId, metric: "jobs", amount: 0n, idempotencyKey: "r", reason: "r" }), "amount");
    expect(await used(userId, "jobs")).toBe(3n);
    // The refused refund kept no key.
    expect((await service.client.refundUsage({ userId, metric: "jobs", amount: 3n, idempotencyKey: "r", reason: "r" })).replayed).toBe(false);
  });
});

describe("SetUsage refuses", () => {
  it("counters and negative levels", async () => {
    await expectInvalid(service.client.setUsage({ userId: "u", metric: "jobs", value: 3n }), "metric");
    await expectInvalid(service.client.setUsage({ userId: "u", metric: "storage_mb", value: -1n }), "value");
    expect(await used("u", "jobs")).toBe(0n);
  });
});
