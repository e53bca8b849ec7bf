import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "slonik";
import { CatalogSource } from "../../src/app/catalog-source.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { composeTestService, createTestService, inMemoryClient, inMemoryClientWithHeaders, SERVICE_TOKEN, type TestService } from "../support/service.ts";

let service: TestService;
beforeAll(async () => {
  service = await createTestService();
});

describe("service tokens", () => {
  it.each([
    ["no credential", null],
    ["a wrong token", "not-the-service-token-at-all"],
    ["a prefix of the token", SERVICE_TOKEN.slice(0, -1)],
    ["the token with a suffix", `${SERVICE_TOKEN}x`],
  ])("refuse %s on every RPC", async (_, token) => {
    const client = service.clientWith(token);
    const calls = [
      () => client.getPlan({ userId: "u" }),
      () => client.hasFeature({ userId: "u", feature: "api_access" }),
      () => client.checkQuota({ userId: "u", metric: "jobs" }),
      () => client.incrementUsage({ userId: "u", metric: "jobs", amount: 1n }),
      () => client.upgradePlan({ userId: "u", planCode: "enterprise" }),
      () => client.listPlans({}),
      () => client.getUsage({ userId: "u" }),
      () => client.consumeUsage({ userId: "u", items: [{ metric: "jobs", amount: 1n }] }),
      () => client.setUsage({ userId: "u", metric: "storage_mb", value: 1n }),
      () => client.refundUsage({ userId: "u", metric: "jobs", amount: 1n, idempotencyKey: "k", reason: "r" }),
      () => client.reserveUsage({ userId: "u", items: [{ metric: "jobs", amount: 1n }], ttlSeconds: 60 }),
      () => client.commitReservation({ userId: "u", reservationId: "00000000-0000-4000-8000-000000000000" }),
      () => client.releaseReservation({ userId: "u", reservationId: "00000000-0000-4000-8000-000000000000" }),
      () => client.getReservation({ userId: "u", reservationId: "00000000-0000-4000-8000-000000000000" }),
    ];
    for (const call of calls) {
      const error = await call().then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(error?.code).toBe(Code.Unauthenticated);
    }
    expect((await service.client.getPlan({ userId: "u" })).plan?.code).toBe("free");
    expect((await service.client.checkQuota({ userId: "u", metric: "jobs" })).quota?.used).toBe(0n);
  });
});

describe("credentials in the wrong form", () => {
  it.each([
    ["the token without a scheme", SERVICE_TOKEN],
    ["the Basic scheme", `Basic ${SERVICE_TOKEN}`],
    ["a Token scheme", `Token ${SERVICE_TOKEN}`],
    ["two tokens", `Bearer ${SERVICE_TOKEN} ${SERVICE_TOKEN}`],
    ["a quoted token", `Bearer "${SERVICE_TOKEN}"`],
  ])("refuse %s", async (_, authorization) => {
    const client = inMemoryClientWithHeaders(service.served, { authorization });
    const error = await client.getPlan({ userId: "u" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(error?.code).toBe(Code.Unauthenticated);
  });

  it("refuse a token in another header", async () => {
    const client = inMemoryClientWithHeaders(service.served, { "x-api-key": SERVICE_TOKEN });
    const error = await client.getPlan({ userId: "u" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(error?.code).toBe(Code.Unauthenticated);
  });
});

describe("hostile strings", () => {
  it("reach SQL only as parameters", async () => {
    const userId = "x'); delete from usage_counters; --";
    await service.client.incrementUsage({ userId: "bystander", metric: "jobs", amount: 2n });
    await service.client.incrementUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "'; drop table plans; --" });
    await service.client.upgradePlan({ userId, planCode: "pro" });
    expect((await service.client.getPlan({ userId })).plan?.code).toBe("pro");
    expect((await service.client.checkQuota({ userId: "bystander", metric: "jobs" })).quota?.used).toBe(2n);
    expect(await service.pool.oneFirst(sql.unsafe`select count(*) from plans`)).toBe(3n);
  });
});

describe("internal errors", () => {
  it("are sent without internals", async () => {
    const secret = "password=hunter2 at db-primary.internal:5432";
    const queryMethods = new Set(["any", "one", "maybeOne", "oneFirst", "maybeOneFirst", "query", "transaction"]);
    const brokenPool = new Proxy(service.pool, {
      get: (target, property) =>
        queryMethods.has(String(property)) ? () => Promise.reject(new Error(secret)) : Reflect.get(target, property),
    });
    const catalog = await CatalogSource.load(service.pool, createLogger("silent"));
    const { served } = await composeTestService(brokenPool, service.clock, { catalog });
    const client = inMemoryClient(served);
    const error = await client.getPlan({ userId: "u" }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(error?.code).toBe(Code.Internal);
    expect(error?.rawMessage).toBe("internal error");
    expect(JSON.stringify(error?.details)).not.toContain("hunter2");
  });
});
