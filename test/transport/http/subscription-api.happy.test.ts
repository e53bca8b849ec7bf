import { beforeAll, describe, expect, it } from "vitest";
import { seedCatalog } from "../../../src/db/seed.ts";
import type { CatalogDefinition } from "../../../src/domain/catalog.ts";
import { defaultCatalog } from "../../support/catalog.ts";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { userToken } from "../../support/service.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ start: "2026-06-10T08:00:00Z" });
});

async function get(path: string, token?: string, headers: Record<string, string> = {}) {
  return fetch(`${server.httpUrl}${path}`, {
    headers: { ...headers, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
  });
}

/** The default catalog with `change` made to the plan `code`. */
function withPlanChange(code: string, change: Partial<CatalogDefinition["plans"][number]>): CatalogDefinition {
  return { ...defaultCatalog, plans: defaultCatalog.plans.map((plan) => (plan.code === code ? { ...plan, ...change } : plan)) };
}

/** Publishes `catalog` (a new version of each plan it changes) and has the server read it. */
async function publish(catalog: CatalogDefinition): Promise<void> {
  await seedCatalog(server.pool, catalog);
  await server.catalog.refresh();
}

describe("GET /v1/subscription/plans", () => {
  it("lists the three plans to anyone, as proto3 JSON", async () => {
    const response = await get("/v1/subscription/plans");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await response.json()) as { plans: { code: string; priceCents: string; quotas: { metric: string; limit?: string; resetPeriod: string }[] }[] };
    expect(body.plans.map((plan) => [plan.code, plan.priceCents])).toEqual([
      ["free", "0"],
      ["pro", "1999"],
      ["enterprise", "9999"],
    ]);
    expect(body.plans[0]?.quotas.find((quota) => quota.metric === "jobs")).toEqual({ metric: "jobs", limit: "10", resetPeriod: "RESET_PERIOD_MONTH" });
  });

  it("never lists a hidden plan", async () => {
    await publish(withPlanChange("pro", { visibility: "hidden" }));
    try {
      const body = (await (await get("/v1/subscription/plans")).json()) as { plans: { code: string }[] };
      expect(body.plans.map((plan) => plan.code)).toEqual(["free", "enterprise"]);
    } finally {
      await publish(defaultCatalog);
    }
  });

  it("is cacheable, and revalidates with its ETag", async () => {
    const first = await get("/v1/subscription/plans");
    expect(first.headers.get("cache-control")).toBe("public, max-age=60");
    const etag = first.headers.get("etag");
    expect(etag).toMatch(/^".+"$/);
    const again = await get("/v1/subscription/plans", undefined, { "if-none-match": etag! });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const changed = await get("/v1/subscription/plans", undefined, { "if-none-match": '"something-else"' });
    expect(changed.status).toBe(200);
  });

  it("has a new ETag, and the new prices, once the catalog changes", async () => {
    const before = await get("/v1/subscription/plans");
    await publish(withPlanChange("pro", { priceCents: 2499n }));
    const after = await get("/v1/subscription/plans");
    expect(after.headers.get("etag")).not.toBe(before.headers.get("etag"));
    expect(((await after.json()) as { plans: { code: string; priceCents: string }[] }).plans.find((plan) => plan.code === "pro")?.priceCents).toBe("2499");
    const stale = await get("/v1/subscription/plans", undefined, { "if-none-match": before.headers.get("etag")! });
    expect(stale.status).toBe(200);
    await publish(defaultCatalog);
  });

  it("answers HEAD like GET, without a body", async () => {
    const response = await fetch(`${server.httpUrl}/v1/subscription/plans`, { method: "HEAD" });
    expect(response.status).toBe(200);
    expect(response.headers.get("etag")).not.toBeNull();
  });
});

describe("GET /v1/subscription/me", () => {
  it("shows the caller's own plan and subscription", async () => {
    await server.planChanges.changePlan("cli", "carol", server.entitlements.plan("pro"), 30);
    const response = await get("/v1/subscription/me", await userToken("carol"));
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("private, no-store");
    const body = (await response.json()) as { plan: { code: string }; subscription: Record<string, string> };
    expect(body.plan.code).toBe("pro");
    expect(body.subscription).toMatchObject({
      userId: "carol",
      planCode: "pro",
      status: "SUBSCRIPTION_STATUS_ACTIVE",
      startedAt: "2026-06-10T08:00:00Z",
      expiresAt: "2026-07-10T08:00:00Z",
    });
  });

  it("puts a new user on free with no subscription", async () => {
    const body = (await (await get("/v1/subscription/me", await userToken("dave"))).json()) as Record<string, unknown>;
    expect((body.plan as { code: string }).code).toBe("free");
    expect(body.subscription).toBeUndefined();
  });
});

describe("GET /v1/subscription/usage", () => {
  it("shows the caller's usage with period start and reset for each counter", async () => {
    await server.entitlements.increment({ userId: "erin", metric: server.entitlements.metric("jobs"), amount: 3n, idempotencyKey: undefined });
    const response = await get("/v1/subscription/usage", await userToken("erin"));
    expect(response.status).toBe(200);
    const { quotas } = (await response.json()) as { quotas: Record<string, string>[] };
    expect(quotas.map((quota) => quota.metric)).toEqual(["api_calls", "compute_minutes", "jobs", "storage_mb"]);
    expect(quotas.find((quota) => quota.metric === "jobs")).toEqual({
      metric: "jobs",
      used: "3",
      limit: "10",
      remaining: "7",
      periodStart: "2026-06-01T00:00:00Z",
      resetsAt: "2026-07-01T00:00:00Z",
      limitSource: "ENTITLEMENT_SOURCE_PLAN",
      grantRemaining: "0",
      reserved: "0",
    });
    expect(quotas.find((quota) => quota.metric === "api_calls")).toMatchObject({ periodStart: "2026-06-10T00:00:00Z", resetsAt: "2026-06-11T00:00:00Z" });
    expect(quotas.find((quota) => quota.metric === "storage_mb")).toEqual({
      metric: "storage_mb",
      used: "0",
      limit: "100",
      remaining: "100",
      limitSource: "ENTITLEMENT_SOURCE_PLAN",
      grantRemaining: "0",
      reserved: "0",
    });
  });
});

describe("SubscriptionService over RPC", () => {
  it("takes the same user credential over Connect", async () => {
    const response = await fetch(`${server.httpUrl}/entitlements.v1.SubscriptionService/GetMySubscription`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${await userToken("frank")}` },
      body: "{}",
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { plan: { code: string } }).plan.code).toBe("free");
  });
});
