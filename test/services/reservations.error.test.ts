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

const jobs = (amount: bigint) => [{ metric: "jobs", amount }];
const quota = async (userId: string) => (await service.client.checkQuota({ userId, metric: "jobs" })).quota!;
const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

describe("ReserveUsage refuses", () => {
  it("a ttl outside 1..86400 seconds, and items as ConsumeUsage refuses them, holding nothing", async () => {
    await expectInvalid(service.client.reserveUsage({ userId: "u", items: jobs(1n), ttlSeconds: 0 }), "ttl_seconds");
    await expectInvalid(service.client.reserveUsage({ userId: "u", items: jobs(1n), ttlSeconds: 86_401 }), "ttl_seconds");
    await expectInvalid(service.client.reserveUsage({ userId: "u", items: jobs(1n), ttlSeconds: -5 }), "ttl_seconds");
    await expectInvalid(service.client.reserveUsage({ userId: "u", items: [], ttlSeconds: 60 }), "items");
    await expectInvalid(service.client.reserveUsage({ userId: "u", items: [...jobs(1n), ...jobs(2n)], ttlSeconds: 60 }), "items[1].metric");
    await expectInvalid(service.client.reserveUsage({ userId: "u", items: jobs(0n), ttlSeconds: 60 }), "items[0].amount");
    expect((await refusal(service.client.reserveUsage({ userId: "u", items: [{ metric: "rockets", amount: 1n }], ttlSeconds: 60 }))).code).toBe(Code.NotFound);
    expect((await quota("u")).reserved).toBe(0n);
  });

  it("a key used for other items or by ConsumeUsage", async () => {
    await service.client.reserveUsage({ userId: "keyed", items: jobs(1n), ttlSeconds: 60, idempotencyKey: "k" });
    const other = await refusal(service.client.reserveUsage({ userId: "keyed", items: jobs(2n), ttlSeconds: 60, idempotencyKey: "k" }));
    expect(other.code).toBe(Code.FailedPrecondition);
    expect(other.findDetails(ErrorInfoSchema)[0]?.reason).toBe("IDEMPOTENCY_KEY_REUSED");
    const consumed = await refusal(service.client.consumeUsage({ userId: "keyed", items: jobs(1n), idempotencyKey: "k" }));
    expect(consumed.code).toBe(Code.FailedPrecondition);
    expect(await quota("keyed")).toMatchObject({ used: 0n, reserved: 1n });

  });

  it("for a suspended account; a reservation made before still commits, as its work was done", async () => {
    const { reservation } = await service.client.reserveUsage({ userId: "frozen", items: jobs(2n), ttlSeconds: 60 });
    await service.pool.query(sql.unsafe`update accounts set status = 'suspended', suspended_reason = 'fraud' where user_id = 'frozen'`);
    expect((await refusal(service.client.reserveUsage({ userId: "frozen", items: jobs(1n), ttlSeconds: 60 }))).code).toBe(Code.PermissionDenied);
    const { quotas } = await service.client.commitReservation({ userId: "frozen", reservationId: reservation!.id, actual: jobs(2n) });
    expect(quotas[0]).toMatchObject({ used: 2n, reserved: 0n });
  });
});

describe("CommitReservation refuses", () => {
  it("more than was reserved, a metric not reserved, a metric twice, a negative amount: counting nothing", async () => {
    const userId = "over-committer";
    const { reservation } = await service.client.reserveUsage({ userId, items: jobs(3n), ttlSeconds: 60 });
    const reservationId = reservation!.id;
    await expectInvalid(service.client.commitReservation({ userId, reservationId, actual: jobs(4n) }), "actual[0]");
    await expectInvalid(service.client.commitReservation({ userId, reservationId, actual: [{ metric: "api_calls", amount: 1n }] }), "actual[0]");
    await expectInvalid(service.client.commitReservation({ userId, reservationId, actual: [...jobs(1n), ...jobs(1n)] }), "actual[1].metric");
    await expectInvalid(service.client.commitReservation({ userId, reservationId, actual: jobs(-1n) }), "actual[0].amount");
    expect(await quota(userId)).toMatchObject({ used: 0n, reserved: 3n });
    expect((await service.client.commitReservation({ userId, reservationId, actual: jobs(3n) })).quotas[0]?.used).toBe(3n);
  });

  it("an unknown reservation, another user's, or an id that is not a UUID", async () => {
    const { reservation } = await service.client.reserveUsage({ userId: "owner", items: jobs(2n), ttlSeconds: 60 });
    expect((await refusal(service.client.commitReservation({ userId: "owner", reservationId: UNKNOWN_ID }))).code).toBe(Code.NotFound);
    expect((await refusal(service.client.commitReservation({ userId: "thief", reservationId: reservation!.id, actual: jobs(1n) }))).code).toBe(Code.NotFound);
    expect((await refusal(service.client.releaseReservation({ userId: "thief", reservationId: reservation!.id }))).code).toBe(Code.NotFound);
    expect((await refusal(service.client.getReservation({ userId: "thief", reservationId: reservation!.id }))).code).toBe(Code.NotFound);
    await expectInvalid(service.client.commitReservation({ userId: "owner", reservationId: "not-a-uuid" }), "reservation_id");
    await expectInvalid(service.client.releaseReservation({ userId: "owner", reservationId: "" }), "reservation_id");
    expect((await quota("owner")).reserved).toBe(2n);
  });

  it("a release after a commit", async () => {
    const userId = "committed-then-released";
    const { reservation } = await service.client.reserveUsage({ userId, items: jobs(2n), ttlSeconds: 60 });
    await service.client.commitReservation({ userId, reservationId: reservation!.id, actual: jobs(1n) });
    expect((await refusal(service.client.releaseReservation({ userId, reservationId: reservation!.id }))).code).toBe(Code.FailedPrecondition);
    expect(await quota(userId)).toMatchObject({ used: 1n, reserved: 0n });
  });
});
