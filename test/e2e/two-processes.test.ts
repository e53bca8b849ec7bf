import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { sql } from "slonik";
import { z } from "zod";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { createEntitlementClient } from "../../clients/node/src/index.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { spawnService } from "../support/process.ts";
import { composeTestService, JWT_SECRET, SERVICE_TOKEN, userToken } from "../support/service.ts";
import { systemClock } from "../../src/domain/clock.ts";

/** Two service processes on one database, as two replicas behind a balancer. */
let database: TestDatabase;
let replicas: Client<typeof EntitlementService>[];
let httpUrls: string[];

beforeAll(async () => {
  database = await createTestDatabase();
  // A long TTL: whatever a replica sees of another's change comes from the change notification.
  const env = { ...database.env, SERVICE_TOKENS: SERVICE_TOKEN, JWT_SECRET, DATABASE_POOL_SIZE: "10", STANDING_CACHE_TTL_MS: "60000" };
  const processes = await Promise.all([spawnService(env), spawnService(env)]);
  httpUrls = processes.map((service) => `http://127.0.0.1:${service.httpPort}`);
  replicas = processes.map((service) =>
    createEntitlementClient({ baseUrl: `http://127.0.0.1:${service.httpPort}`, token: SERVICE_TOKEN, protocol: "connect", timeoutMs: 30_000 }),
  );
}, 60_000);

const replica = (i: number) => replicas[i % 2]!;

describe("two replicas", () => {
  it("grant exactly the limit to hundreds of racing increments", async () => {
    const settled = await Promise.allSettled(
      Array.from({ length: 300 }, (_, i) => replica(i).incrementUsage({ userId: "shared-race", metric: "jobs", amount: 1n })),
    );
    const granted = settled.filter((result) => result.status === "fulfilled").length;
    const refusals = settled.flatMap((result) => (result.status === "rejected" ? [ConnectError.from(result.reason).code] : []));
    expect(granted).toBe(10);
    expect(new Set(refusals)).toEqual(new Set([Code.ResourceExhausted]));
    expect((await replica(0).checkQuota({ userId: "shared-race", metric: "jobs" })).quota?.used).toBe(10n);
  });

  it("never over-grant either metric to 400 racing all-or-nothing calls, nor count an item of a refused one", async () => {
    const userId = "shared-consume";
    const itemsOf = (i: number) =>
      i % 3 === 0 ? [{ metric: "api_calls", amount: 2n }] : [{ metric: "jobs", amount: 1n }, { metric: "api_calls", amount: BigInt(1 + (i % 4)) }];
    const settled = await Promise.allSettled(Array.from({ length: 400 }, (_, i) => replica(i).consumeUsage({ userId, items: itemsOf(i) })));
    const granted = settled.flatMap((result, i) => (result.status === "fulfilled" ? [itemsOf(i)] : []));
    const refusals = settled.flatMap((result) => (result.status === "rejected" ? [ConnectError.from(result.reason).code] : []));
    expect(new Set(refusals)).toEqual(new Set([Code.ResourceExhausted]));
    const sum = (metric: string) => granted.flatMap((items) => items).reduce((total, item) => total + (item.metric === metric ? item.amount : 0n), 0n);
    const jobs = (await replica(0).checkQuota({ userId, metric: "jobs" })).quota?.used;
    const apiCalls = (await replica(1).checkQuota({ userId, metric: "api_calls" })).quota?.used;
    expect([jobs, apiCalls]).toEqual([sum("jobs"), sum("api_calls")]);
    expect(jobs).toBeLessThanOrEqual(10n);
    expect(apiCalls).toBeLessThanOrEqual(100n);
    expect(apiCalls! + 2n > 100n || jobs === 10n).toBe(true);
  });

  it("count racing retries of one key once", async () => {
    const request = { userId: "shared-retries", metric: "api_calls", amount: 9n, idempotencyKey: "once-only" };
    const responses = await Promise.all(Array.from({ length: 60 }, (_, i) => replica(i).incrementUsage(request)));
    expect(responses.filter((response) => !response.replayed)).toHaveLength(1);
    expect(new Set(responses.map((response) => response.quota?.used))).toEqual(new Set([9n]));
    expect((await replica(1).checkQuota({ userId: "shared-retries", metric: "api_calls" })).quota?.used).toBe(9n);
  });

  it("stay consistent when a plan change races increments", async () => {
    const userId = "upgrading";
    const increments = Array.from({ length: 120 }, (_, i) =>
      replica(i).incrementUsage({ userId, metric: "jobs", amount: 1n }).then(() => true, () => false),
    );
    const upgrade = replica(1).upgradePlan({ userId, planCode: "pro" });
    const [granted] = await Promise.all([Promise.all(increments), upgrade]);
    const successes = granted.filter(Boolean).length;
    expect(successes).toBeGreaterThanOrEqual(10);
    expect(successes).toBeLessThanOrEqual(120);
    expect((await replica(0).checkQuota({ userId, metric: "jobs" })).quota?.used).toBe(BigInt(successes));
    expect((await replica(0).getPlan({ userId })).plan?.code).toBe("pro");
    const current = await database.pool.oneFirst(sql.type(z.object({ count: z.bigint() }))`
      select count(*) from subscriptions where user_id = ${userId} and ended_at is null
    `);
    expect(current).toBe(1n);
  });

  it("see each other's changes within 1 s, through their caches", async () => {
    const userId = "cached-user";
    const [a, b] = [replica(0), replica(1)];
    expect((await b.getPlan({ userId })).plan?.code).toBe("free");
    await a.upgradePlan({ userId, planCode: "pro" });
    await expect.poll(async () => (await b.getPlan({ userId })).plan?.code, { timeout: 1000, interval: 50 }).toBe("pro");

    // A change that bypasses the service is not seen: replica B really answers from memory...
    await database.pool.query(sql.unsafe`update subscriptions set plan_code = 'enterprise' where user_id = ${userId} and ended_at is null`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await b.getPlan({ userId })).plan?.code).toBe("pro");
    // ...until the change is announced.
    await database.pool.query(sql.unsafe`select pg_notify('entitlements_account', ${userId})`);
    await expect.poll(async () => (await b.getPlan({ userId })).plan?.code, { timeout: 1000, interval: 50 }).toBe("enterprise");
  });

  it("see a suspension and a session revocation made through another replica within 1 s", async () => {
    const userId = "suspended-elsewhere";
    const { administration } = await composeTestService(database.pool, systemClock);
    await administration.setSuperadmin("cli", "root", true);
    const [a, b] = [replica(0), replica(1)];
    await a.incrementUsage({ userId, metric: "jobs", amount: 1n });
    const userJwt = await userToken(userId, { claims: { iat: Math.floor(Date.now() / 1000) - 5 } });
    expect((await fetch(`${httpUrls[1]}/v1/subscription/me`, { headers: { authorization: `Bearer ${userJwt}` } })).status).toBe(200);
    expect((await b.hasFeature({ userId, feature: "api_access" })).enabled).toBe(true);

    const admin = { authorization: `Bearer ${await userToken("root")}`, "content-type": "application/json" };
    const suspend = await fetch(`${httpUrls[0]}/v1/admin/accounts/${userId}:suspend`, { method: "POST", headers: admin, body: '{"reason":"test"}' });
    expect(suspend.status).toBe(200);
    await expect.poll(async () => (await b.hasFeature({ userId, feature: "api_access" })).enabled, { timeout: 1000, interval: 50 }).toBe(false);

    const revoke = await fetch(`${httpUrls[0]}/v1/admin/accounts/${userId}:revokeSessions`, { method: "POST", headers: admin, body: "{}" });
    expect(revoke.status).toBe(200);
    await expect
      .poll(async () => (await fetch(`${httpUrls[1]}/v1/subscription/me`, { headers: { authorization: `Bearer ${userJwt}` } })).status, { timeout: 1000, interval: 50 })
      .toBe(401);
  });
});
