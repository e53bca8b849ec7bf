import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { sql } from "slonik";
import { z } from "zod";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { spawnService } from "../support/process.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/** Two service processes on one database, as two replicas behind a balancer. */
let database: TestDatabase;
let replicas: Client<typeof EntitlementService>[];

beforeAll(async () => {
  database = await createTestDatabase();
  const env = { DATABASE_URL: database.url, SERVICE_TOKENS: SERVICE_TOKEN, DATABASE_POOL_SIZE: "10" };
  const processes = await Promise.all([spawnService(env), spawnService(env)]);
  replicas = processes.map((service) =>
    createClient(
      EntitlementService,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${service.httpPort}`,
        httpVersion: "1.1",
        interceptors: [(next) => (request) => { request.header.set("authorization", `Bearer ${SERVICE_TOKEN}`); return next(request); }],
      }),
    ),
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
});
