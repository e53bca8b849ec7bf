import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { sql } from "slonik";
import { z } from "zod";
import { QuotaFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { refusal } from "../support/refusals.ts";
import { createTestService, type TestService } from "../support/service.ts";

let service: TestService;
beforeAll(async () => {
  service = await createTestService();
});
beforeEach(() => service.clock.set("2026-03-15T12:00:00Z"));

const used = async (userId: string, metric: string) => (await service.client.checkQuota({ userId, metric })).quota?.used;

describe("ConsumeUsage", () => {
  it("counts every item in one call, and answers each metric's quota in the order asked", async () => {
    const userId = "job-runner";
    const { quotas, replayed } = await service.client.consumeUsage({
      userId,
      items: [
        { metric: "jobs", amount: 1n },
        { metric: "compute_minutes", amount: 30n },
        { metric: "api_calls", amount: 2n },
      ],
    });
    expect(replayed).toBe(false);
    expect(quotas.map((q) => [q.metric, q.used, q.remaining])).toEqual([
      ["jobs", 1n, 9n],
      ["compute_minutes", 30n, undefined],
      ["api_calls", 2n, 98n],
    ]);
    expect(await used(userId, "compute_minutes")).toBe(30n);
  });

  it("counts nothing when one item does not fit, and names each item that did not", async () => {
    const userId = "all-or-nothing";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 9n });
    const error = await refusal(
      service.client.consumeUsage({
        userId,
        items: [
          { metric: "compute_minutes", amount: 30n },
          { metric: "jobs", amount: 2n },
          { metric: "api_calls", amount: 101n },
        ],
      }),
    );
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.findDetails(QuotaFailureSchema)[0]?.violations.map((v) => [v.quotaMetric, v.quotaValue])).toEqual([
      ["jobs", 10n],
      ["api_calls", 100n],
    ]);
    expect([await used(userId, "compute_minutes"), await used(userId, "jobs"), await used(userId, "api_calls")]).toEqual([0n, 9n, 0n]);
  });

  it("draws on grants for an item the allowance cannot cover, only when every item fits", async () => {
    const userId = "granted-consumer";
    await service.client.grantUsage({ userId, metric: "jobs", amount: 5n, idempotencyKey: "g", reason: "credit" });
    await refusal(service.client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 12n }, { metric: "api_calls", amount: 500n }] }));
    expect((await service.client.listGrants({ userId })).grants[0]?.remaining).toBe(5n);
    const { quotas } = await service.client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 12n }, { metric: "api_calls", amount: 5n }] });
    expect(quotas[0]).toMatchObject({ used: 12n, grantRemaining: 3n, remaining: 3n });
    expect((await service.client.listGrants({ userId })).grants[0]?.remaining).toBe(3n);
  });

  it("replays the first result under its key, counting once, also when retries race", async () => {
    const userId = "keyed-consumer";
    const request = { userId, items: [{ metric: "jobs", amount: 2n }, { metric: "compute_minutes", amount: 7n }], idempotencyKey: "run-1" };
    const answers = await Promise.all(Array.from({ length: 8 }, () => service.client.consumeUsage(request)));
    expect(answers.filter((answer) => !answer.replayed)).toHaveLength(1);
    for (const answer of answers) expect(answer.quotas.map((q) => q.used)).toEqual([2n, 7n]);
    expect([await used(userId, "jobs"), await used(userId, "compute_minutes")]).toEqual([2n, 7n]);
  });
});

describe("RefundUsage", () => {
  it("gives back usage of the current period once per key, audited", async () => {
    const userId = "refunded";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 6n });
    const first = await service.client.refundUsage({ userId, metric: "jobs", amount: 4n, idempotencyKey: "r1", reason: "job failed" });
    expect(first).toMatchObject({ replayed: false, quota: { used: 2n, remaining: 8n } });
    const again = await service.client.refundUsage({ userId, metric: "jobs", amount: 4n, idempotencyKey: "r1", reason: "job failed" });
    expect(again).toMatchObject({ replayed: true, quota: { used: 2n } });
    expect(await used(userId, "jobs")).toBe(2n);
    const actions = await service.pool.anyFirst(sql.type(z.object({ action: z.string() }))`select action from audit_events where target_user_id = ${userId}`);
    expect(actions).toEqual(["usage.refund"]);
  });

  it("replays a refund of a metric the account has without a limit", async () => {
    const userId = "unlimited-refund";
    await service.client.setQuotaOverride({ userId, metric: "api_calls", reason: "no limit" });
    await service.client.incrementUsage({ userId, metric: "api_calls", amount: 500n });
    await service.client.refundUsage({ userId, metric: "api_calls", amount: 5n, idempotencyKey: "u1", reason: "r" });
    const again = await service.client.refundUsage({ userId, metric: "api_calls", amount: 5n, idempotencyKey: "u1", reason: "r" });
    expect(again).toMatchObject({ replayed: true, quota: { used: 495n } });
    expect(again.quota?.limit).toBeUndefined();
  });
});

describe("SetUsage", () => {
  it("sets a gauge's level, refuses growth past the limit, and always lets it shrink", async () => {
    const userId = "storage-user";
    expect((await service.client.setUsage({ userId, metric: "storage_mb", value: 80n })).quota).toMatchObject({ used: 80n, remaining: 20n });
    expect((await refusal(service.client.setUsage({ userId, metric: "storage_mb", value: 101n }))).code).toBe(Code.ResourceExhausted);
    expect(await used(userId, "storage_mb")).toBe(80n);
    // A downgrade can leave a gauge above its limit: shrinking is allowed, growing is not.
    await service.client.upgradePlan({ userId, planCode: "pro" });
    await service.client.setUsage({ userId, metric: "storage_mb", value: 5000n });
    await service.client.upgradePlan({ userId, planCode: "free" });
    expect((await service.client.setUsage({ userId, metric: "storage_mb", value: 4000n })).quota?.used).toBe(4000n);
    expect((await refusal(service.client.setUsage({ userId, metric: "storage_mb", value: 4001n }))).code).toBe(Code.ResourceExhausted);
    expect((await service.client.setUsage({ userId, metric: "storage_mb", value: 0n })).quota?.used).toBe(0n);
  });

  it("under a key sets once: a late retry does not undo a later change", async () => {
    const userId = "keyed-level";
    await service.client.setUsage({ userId, metric: "storage_mb", value: 10n, idempotencyKey: "s1" });
    await service.client.setUsage({ userId, metric: "storage_mb", value: 30n, idempotencyKey: "s2" });
    expect(await service.client.setUsage({ userId, metric: "storage_mb", value: 10n, idempotencyKey: "s1" })).toMatchObject({ replayed: true, quota: { used: 10n } });
    expect(await used(userId, "storage_mb")).toBe(30n);
  });
});
