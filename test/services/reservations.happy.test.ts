import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ReservationState } from "../../gen/entitlements/v1/usage_pb.js";
import { QuotaFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { refusal } from "../support/refusals.ts";
import { createTestService, type TestService } from "../support/service.ts";

let service: TestService;
beforeAll(async () => {
  service = await createTestService();
});
beforeEach(() => service.clock.set("2026-03-15T12:00:00Z"));

const quota = async (userId: string, metric: string) => (await service.client.checkQuota({ userId, metric })).quota!;
const reserve = (userId: string, items: { metric: string; amount: bigint }[], ttlSeconds = 600, idempotencyKey = "") =>
  service.client.reserveUsage({ userId, items, ttlSeconds, idempotencyKey });

describe("ReserveUsage", () => {
  it("holds every item: a check and an increment count it as used, and the answer says what is reserved", async () => {
    const userId = "holder";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 2n });
    const { reservation, quotas, replayed } = await reserve(userId, [
      { metric: "jobs", amount: 5n },
      { metric: "api_calls", amount: 40n },
    ]);
    expect(replayed).toBe(false);
    expect(reservation).toMatchObject({ userId, state: ReservationState.HELD, items: [{ metric: "jobs", amount: 5n }, { metric: "api_calls", amount: 40n }] });
    expect(reservation?.expiresAt?.seconds).toBe(BigInt(Date.parse("2026-03-15T12:10:00Z") / 1000));
    expect(quotas.map((q) => [q.metric, q.used, q.reserved, q.remaining])).toEqual([
      ["jobs", 2n, 5n, 3n],
      ["api_calls", 0n, 40n, 60n],
    ]);
    expect(await quota(userId, "jobs")).toMatchObject({ used: 2n, reserved: 5n, remaining: 3n });
    expect((await service.client.checkQuota({ userId, metric: "jobs", amount: 4n })).allowed).toBe(false);
    // 2 used + 5 held + 4 > 10: refused, though 2 + 4 alone would fit.
    expect((await refusal(service.client.incrementUsage({ userId, metric: "jobs", amount: 4n }))).code).toBe(Code.ResourceExhausted);
    expect((await service.client.incrementUsage({ userId, metric: "jobs", amount: 3n })).quota).toMatchObject({ used: 5n, reserved: 5n, remaining: 0n });
    const getUsage = await service.client.getUsage({ userId });
    expect(getUsage.quotas.find((q) => q.metric === "jobs")).toMatchObject({ used: 5n, reserved: 5n });
  });

  it("holds nothing when one item does not fit, and names each item that did not", async () => {
    const userId = "over-reserver";
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 8n });
    const error = await refusal(reserve(userId, [{ metric: "api_calls", amount: 10n }, { metric: "jobs", amount: 3n }]));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.findDetails(QuotaFailureSchema)[0]?.violations.map((v) => v.quotaMetric)).toEqual(["jobs"]);
    expect((await quota(userId, "api_calls")).reserved).toBe(0n);
    expect((await quota(userId, "jobs")).reserved).toBe(0n);
  });

  it("answers a retry under its key with the same reservation, and holds once", async () => {
    const userId = "reserve-retrier";
    const first = await reserve(userId, [{ metric: "jobs", amount: 4n }], 600, "job-7");
    const again = await reserve(userId, [{ metric: "jobs", amount: 4n }], 600, "job-7");
    expect(again.replayed).toBe(true);
    expect(again.reservation?.id).toBe(first.reservation?.id);
    expect((await quota(userId, "jobs")).reserved).toBe(4n);
  });

  it("takes grants into account: held units beyond the allowance claim them, and an increment cannot draw what is claimed", async () => {
    const userId = "granted-holder";
    await service.client.grantUsage({ userId, metric: "jobs", amount: 5n, idempotencyKey: "g", reason: "credit" });
    const { quotas } = await reserve(userId, [{ metric: "jobs", amount: 13n }]);
    expect(quotas[0]).toMatchObject({ used: 0n, reserved: 13n, grantRemaining: 5n, remaining: 2n });
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 2n });
    expect((await refusal(service.client.incrementUsage({ userId, metric: "jobs", amount: 1n }))).code).toBe(Code.ResourceExhausted);
  });
});

describe("CommitReservation", () => {
  it("counts what was used, frees the rest, and answers the same again on a repeat", async () => {
    const userId = "committer";
    const { reservation } = await reserve(userId, [{ metric: "jobs", amount: 6n }, { metric: "compute_minutes", amount: 60n }]);
    const actual = [{ metric: "compute_minutes", amount: 17n }, { metric: "jobs", amount: 1n }];
    const committed = await service.client.commitReservation({ userId, reservationId: reservation!.id, actual });
    expect(committed.replayed).toBe(false);
    expect(committed.reservation).toMatchObject({
      state: ReservationState.COMMITTED,
      committed: [{ metric: "jobs", amount: 1n }, { metric: "compute_minutes", amount: 17n }],
    });
    expect(committed.quotas.map((q) => [q.metric, q.used, q.reserved])).toEqual([
      ["jobs", 1n, 0n],
      ["compute_minutes", 17n, 0n],
    ]);
    expect(await quota(userId, "jobs")).toMatchObject({ used: 1n, reserved: 0n, remaining: 9n });
    const again = await service.client.commitReservation({ userId, reservationId: reservation!.id, actual });
    expect(again.replayed).toBe(true);
    expect(again.quotas.map((q) => q.used)).toEqual([1n, 17n]);
    expect((await quota(userId, "compute_minutes")).used).toBe(17n);
    const other = await refusal(service.client.commitReservation({ userId, reservationId: reservation!.id, actual: [{ metric: "jobs", amount: 2n }] }));
    expect(other.code).toBe(Code.FailedPrecondition);
  });

  it("with no actual items counts nothing", async () => {
    const userId = "unused";
    const { reservation } = await reserve(userId, [{ metric: "jobs", amount: 3n }]);
    const { quotas } = await service.client.commitReservation({ userId, reservationId: reservation!.id });
    expect(quotas[0]).toMatchObject({ used: 0n, reserved: 0n });
  });

  it("draws from grants what the allowance left after other holds cannot cover", async () => {
    const userId = "granted-committer";
    await service.client.grantUsage({ userId, metric: "jobs", amount: 5n, idempotencyKey: "g", reason: "credit" });
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 8n });
    const { reservation } = await reserve(userId, [{ metric: "jobs", amount: 6n }]);
    const { quotas } = await service.client.commitReservation({ userId, reservationId: reservation!.id, actual: [{ metric: "jobs", amount: 4n }] });
    expect(quotas[0]).toMatchObject({ used: 12n, reserved: 0n, grantRemaining: 3n, remaining: 3n });
  });
});

describe("ReleaseReservation and expiry", () => {
  it("release frees everything, a repeat answers it as released, and a commit after it is refused", async () => {
    const userId = "releaser";
    const { reservation } = await reserve(userId, [{ metric: "jobs", amount: 10n }]);
    expect((await refusal(service.client.incrementUsage({ userId, metric: "jobs", amount: 1n }))).code).toBe(Code.ResourceExhausted);
    const released = await service.client.releaseReservation({ userId, reservationId: reservation!.id });
    expect(released).toMatchObject({ replayed: false, reservation: { state: ReservationState.RELEASED } });
    expect((await service.client.incrementUsage({ userId, metric: "jobs", amount: 10n })).quota).toMatchObject({ used: 10n, reserved: 0n });
    expect((await service.client.releaseReservation({ userId, reservationId: reservation!.id })).replayed).toBe(true);
    const late = await refusal(service.client.commitReservation({ userId, reservationId: reservation!.id, actual: [{ metric: "jobs", amount: 1n }] }));
    expect(late.code).toBe(Code.FailedPrecondition);
  });

  it("at expires_at every answer stops counting it, with no job run; a late commit is refused", async () => {
    const userId = "expiring";
    const { reservation } = await reserve(userId, [{ metric: "jobs", amount: 7n }], 60);
    expect((await quota(userId, "jobs")).reserved).toBe(7n);
    service.clock.set("2026-03-15T12:00:59.999Z");
    expect((await quota(userId, "jobs")).reserved).toBe(7n);
    service.clock.set("2026-03-15T12:01:00Z");
    expect(await quota(userId, "jobs")).toMatchObject({ reserved: 0n, remaining: 10n });
    expect((await service.client.incrementUsage({ userId, metric: "jobs", amount: 10n })).quota?.used).toBe(10n);
    const late = await refusal(service.client.commitReservation({ userId, reservationId: reservation!.id, actual: [{ metric: "jobs", amount: 1n }] }));
    expect(late.code).toBe(Code.FailedPrecondition);
    expect(late.rawMessage).toContain("expired");
    expect((await service.client.getReservation({ userId, reservationId: reservation!.id })).reservation?.state).toBe(ReservationState.EXPIRED);
    expect((await service.client.releaseReservation({ userId, reservationId: reservation!.id })).reservation?.state).toBe(ReservationState.EXPIRED);
    expect((await quota(userId, "jobs")).used).toBe(10n);
  });
});

describe("racing reservations, increments and commits", () => {
  it("never hold and count more than the limit together, and commits count exactly what they say", async () => {
    const userId = "racer";
    const calls = Array.from({ length: 120 }, (_, i) => async () => {
      const amount = BigInt((i % 3) + 1);
      if (i % 2 === 0) {
        await service.client.incrementUsage({ userId, metric: "api_calls", amount });
        return amount;
      }
      const { reservation } = await service.client.reserveUsage({ userId, items: [{ metric: "api_calls", amount: amount + 1n }], ttlSeconds: 600 });
      await service.client.commitReservation({ userId, reservationId: reservation!.id, actual: [{ metric: "api_calls", amount }] });
      return amount;
    });
    const settled = await Promise.allSettled(calls.map((call) => call()));
    const counted = settled.reduce((sum, result) => sum + (result.status === "fulfilled" ? result.value : 0n), 0n);
    const refused = settled.filter((result) => result.status === "rejected");
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((result) => (result as PromiseRejectedResult).reason.code === Code.ResourceExhausted)).toBe(true);
    expect(await quota(userId, "api_calls")).toMatchObject({ used: counted, reserved: 0n });
    expect(counted).toBeLessThanOrEqual(100n);
  });
});
