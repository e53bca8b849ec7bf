import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { createEntitlementClient, quotaFailureOf, ReservationState } from "../../clients/node/src/index.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});

describe("createEntitlementClient", () => {
  it.each(["grpc", "connect"] as const)("calls the service over %s", async (protocol) => {
    const baseUrl = protocol === "grpc" ? `http://127.0.0.1:${server.listener.grpcPort}` : server.httpUrl;
    const client = createEntitlementClient({ baseUrl, token: SERVICE_TOKEN, protocol });
    const userId = `client-${protocol}`;
    expect((await client.getPlan({ userId })).plan?.code).toBe("free");
    await client.incrementUsage({ userId, metric: "jobs", amount: 10n });
    const error = await client.incrementUsage({ userId, metric: "jobs", amount: 1n }).catch((e: unknown) => e);
    expect(ConnectError.from(error).code).toBe(Code.ResourceExhausted);
    expect(quotaFailureOf(error)?.violations[0]).toMatchObject({ quotaMetric: "jobs", quotaValue: 10n });
  });

  it.each(["grpc", "connect"] as const)("sets per-account terms over %s, and increments draw on grants", async (protocol) => {
    const baseUrl = protocol === "grpc" ? `http://127.0.0.1:${server.listener.grpcPort}` : server.httpUrl;
    const client = createEntitlementClient({ baseUrl, token: SERVICE_TOKEN, protocol });
    const userId = `terms-${protocol}`;
    await client.grantUsage({ userId, metric: "jobs", amount: 4n, idempotencyKey: "credit", reason: "outage" });
    await client.setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "pilot" });
    expect((await client.incrementUsage({ userId, metric: "jobs", amount: 12n })).quota).toMatchObject({ used: 12n, remaining: 2n, grantRemaining: 2n });
    expect((await client.hasFeature({ userId, feature: "sso" })).enabled).toBe(true);
    const error = await client.incrementUsage({ userId, metric: "jobs", amount: 3n }).catch((e: unknown) => e);
    expect(ConnectError.from(error).code).toBe(Code.ResourceExhausted);
    expect(quotaFailureOf(error)?.violations[0]?.description).toContain("and 2 left in grants");
  });

  it.each(["grpc", "connect"] as const)("consumes, refunds and sets levels over %s, with a violation per refused item", async (protocol) => {
    const baseUrl = protocol === "grpc" ? `http://127.0.0.1:${server.listener.grpcPort}` : server.httpUrl;
    const client = createEntitlementClient({ baseUrl, token: SERVICE_TOKEN, protocol });
    const userId = `consumer-${protocol}`;
    const { quotas } = await client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 9n }, { metric: "api_calls", amount: 90n }], idempotencyKey: "c1" });
    expect(quotas.map((quota) => quota.used)).toEqual([9n, 90n]);
    const error = await client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 2n }, { metric: "api_calls", amount: 11n }] }).catch((e: unknown) => e);
    expect(quotaFailureOf(error)?.violations.map((violation) => violation.quotaMetric)).toEqual(["jobs", "api_calls"]);
    expect((await client.refundUsage({ userId, metric: "jobs", amount: 4n, idempotencyKey: "r1", reason: "failed" })).quota?.used).toBe(5n);
    expect((await client.setUsage({ userId, metric: "storage_mb", value: 64n })).quota?.used).toBe(64n);
  });

  it.each(["grpc", "connect"] as const)("reserves, commits and releases over %s", async (protocol) => {
    const baseUrl = protocol === "grpc" ? `http://127.0.0.1:${server.listener.grpcPort}` : server.httpUrl;
    const client = createEntitlementClient({ baseUrl, token: SERVICE_TOKEN, protocol });
    const userId = `reserver-${protocol}`;
    const held = await client.reserveUsage({ userId, items: [{ metric: "jobs", amount: 6n }], ttlSeconds: 300, idempotencyKey: "job-1" });
    expect(held.quotas[0]).toMatchObject({ used: 0n, reserved: 6n, remaining: 4n });
    const error = await client.reserveUsage({ userId, items: [{ metric: "jobs", amount: 5n }], ttlSeconds: 300 }).catch((e: unknown) => e);
    expect(quotaFailureOf(error)?.violations[0]?.description).toContain("6 reserved");
    const committed = await client.commitReservation({ userId, reservationId: held.reservation!.id, actual: [{ metric: "jobs", amount: 2n }] });
    expect(committed.quotas[0]).toMatchObject({ used: 2n, reserved: 0n });
    const other = await client.reserveUsage({ userId, items: [{ metric: "jobs", amount: 8n }], ttlSeconds: 300 });
    expect((await client.releaseReservation({ userId, reservationId: other.reservation!.id })).reservation?.state).toBe(ReservationState.RELEASED);
    expect((await client.getReservation({ userId, reservationId: held.reservation!.id })).reservation?.state).toBe(ReservationState.COMMITTED);
  });

  it("sends its token, and a wrong one is refused", async () => {
    const client = createEntitlementClient({ baseUrl: server.httpUrl, token: "not-the-token-0123456789", protocol: "connect" });
    const error = await client.getPlan({ userId: "u" }).catch((e: unknown) => ConnectError.from(e));
    expect(error).toMatchObject({ code: Code.Unauthenticated });
    expect(quotaFailureOf(error)).toBeUndefined();
  });
});
