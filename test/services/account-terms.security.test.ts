import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sql } from "slonik";
import { SubscriptionService } from "../../gen/entitlements/v1/subscription_service_pb.js";
import type { ComposedService } from "../../src/compose.ts";
import { composeService } from "../../src/compose.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { routerOptions, routes } from "../../src/transport/routes.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { bearer, inMemoryClient, JWT_SECRET, userToken } from "../support/service.ts";

const BILLING_TOKEN = "billing-token-0123456789abcdef";
const CONSOLE_TOKEN = "console-token-0123456789abcdef";

let database: TestDatabase;
let composed: ComposedService;
const clock = new TestClock("2026-03-15T12:00:00Z");

beforeAll(async () => {
  database = await createTestDatabase();
  const settings = loadConfig({ SERVICE_TOKENS: `billing=${BILLING_TOKEN},${CONSOLE_TOKEN}`, JWT_SECRET, STANDING_CACHE_SIZE: "0" });
  composed = await composeService(settings, database.pool, { clock, logger: createLogger("silent") });
  await composed.administration.setSuperadmin("cli", "root", true);
});

const client = (token: string | null) => inMemoryClient(composed.served, token);

async function codeOf(call: Promise<unknown>): Promise<Code | undefined> {
  return call.then(() => undefined, (e: unknown) => ConnectError.from(e).code);
}

async function actors(userId: string): Promise<string[]> {
  const rows = await database.pool.anyFirst(sql.unsafe`select actor_id from audit_events where target_user_id = ${userId} order by id`);
  return rows as string[];
}

const termCalls = (c: ReturnType<typeof client>, userId: string) => [
  () => c.setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "r" }),
  () => c.setQuotaOverride({ userId, metric: "jobs", limit: 1000n, reason: "r" }),
  () => c.clearOverride({ userId, target: { case: "feature", value: "sso" } }),
  () => c.listOverrides({ userId }),
  () => c.grantUsage({ userId, metric: "jobs", amount: 5n, idempotencyKey: "k", reason: "r" }),
  () => c.listGrants({ userId }),
  () => c.revokeGrant({ userId, grantId: "00000000-0000-4000-8000-000000000000" }),
  () => c.startTrial({ userId, planCode: "pro", days: 3 }),
  () => c.schedulePlanChange({ userId, planCode: "pro", when: { case: "at", value: { seconds: 4102444800n, nanos: 0 } } }),
  () => c.cancelScheduledChange({ userId }),
  () => c.refundUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "k", reason: "r" }),
];

describe("who may set per-account terms", () => {
  it("nobody without a service token or a superadmin's token", async () => {
    for (const token of [null, "wrong-token", await userToken("root", { secret: "another-secret-0123456789-0123456789" })]) {
      for (const call of termCalls(client(token), "victim")) expect(await codeOf(call())).toBe(Code.Unauthenticated);
    }
    for (const call of termCalls(client(await userToken("mallory")), "victim")) expect(await codeOf(call())).toBe(Code.PermissionDenied);
    expect((await client(BILLING_TOKEN).listOverrides({ userId: "victim" })).overrides).toEqual([]);
    expect((await client(BILLING_TOKEN).listGrants({ userId: "victim", includeSpent: true })).grants).toEqual([]);
    expect(await client(BILLING_TOKEN).getPlan({ userId: "victim" })).toMatchObject({ plan: { code: "free" } });
    expect((await client(BILLING_TOKEN).getPlan({ userId: "victim" })).scheduledChange).toBeUndefined();
  });

  it("a superadmin may, and only these RPCs: the rest of EntitlementService stays with backends", async () => {
    const admin = client(await userToken("root"));
    await admin.setFeatureOverride({ userId: "by-admin", feature: "sso", enabled: true, reason: "escalation" });
    expect((await admin.listOverrides({ userId: "by-admin" })).overrides).toHaveLength(1);
    expect(await codeOf(admin.getPlan({ userId: "by-admin" }))).toBe(Code.Unauthenticated);
    expect(await codeOf(admin.upgradePlan({ userId: "by-admin", planCode: "enterprise" }))).toBe(Code.Unauthenticated);
    expect(await codeOf(admin.consumeUsage({ userId: "by-admin", items: [{ metric: "jobs", amount: 1n }] }))).toBe(Code.Unauthenticated);
    await client(BILLING_TOKEN).incrementUsage({ userId: "by-admin", metric: "jobs", amount: 2n });
    expect((await admin.refundUsage({ userId: "by-admin", metric: "jobs", amount: 1n, idempotencyKey: "k", reason: "goodwill" })).quota?.used).toBe(1n);
    expect(await actors("by-admin")).toEqual(["root", "root"]);
  });

  it("every change names its actor: the named token, an unnamed one, the admin", async () => {
    await client(BILLING_TOKEN).grantUsage({ userId: "audited", metric: "jobs", amount: 5n, idempotencyKey: "a", reason: "r" });
    await client(CONSOLE_TOKEN).setQuotaOverride({ userId: "audited", metric: "jobs", limit: 50n, reason: "r" });
    await client(await userToken("root")).clearOverride({ userId: "audited", target: { case: "metric", value: "jobs" } });
    await client(await userToken("root")).startTrial({ userId: "audited", planCode: "pro", days: 3 });
    await client(BILLING_TOKEN).upgradePlan({ userId: "audited", planCode: "pro" });
    expect(await actors("audited")).toEqual(["service:billing", "service", "root", "root", "service:billing"]);
  });
});

describe("one account's terms never reach another", () => {
  it("a grant id of another account is not found there, and stays whole", async () => {
    const billing = client(BILLING_TOKEN);
    const { grant } = await billing.grantUsage({ userId: "alice", metric: "jobs", amount: 5n, idempotencyKey: "a", reason: "r" });
    expect(await codeOf(billing.revokeGrant({ userId: "bob", grantId: grant!.id }))).toBe(Code.NotFound);
    expect((await billing.listGrants({ userId: "alice" })).grants[0]?.remaining).toBe(5n);
    // The same key for another user is another grant.
    expect((await billing.grantUsage({ userId: "bob", metric: "jobs", amount: 5n, idempotencyKey: "a", reason: "r" })).replayed).toBe(false);
  });

  it("a user sees their own terms on /v1, without the reasons, and nobody else's", async () => {
    const billing = client(BILLING_TOKEN);
    await billing.setFeatureOverride({ userId: "carol", feature: "sso", enabled: true, reason: "internal: churn risk" });
    await billing.grantUsage({ userId: "carol", metric: "jobs", amount: 7n, idempotencyKey: "c", reason: "internal: outage" });
    const mine = createClient(
      SubscriptionService,
      createRouterTransport(routes(composed.served.registrations), {
        router: routerOptions(composed.served, 1000),
        transport: { interceptors: [bearer(await userToken("carol"))] },
      }),
    );
    await billing.startTrial({ userId: "carol", planCode: "pro", days: 10 });
    await billing.schedulePlanChange({ userId: "carol", planCode: "enterprise", when: { case: "atPeriodEnd", value: true } });
    const view = await mine.getMySubscription({});
    expect(view.subscription?.trialEndsAt).toEqual(timestampFromDate(new Date("2026-03-25T12:00:00Z")));
    expect(view.scheduledChange).toMatchObject({ planCode: "enterprise", effectiveAt: timestampFromDate(new Date("2026-03-25T12:00:00Z")) });
    expect(view.overrides.map((o) => [o.target.value, o.enabled, o.reason])).toEqual([["sso", true, ""]]);
    expect(view.grants.map((g) => [g.amount, g.reason])).toEqual([[7n, ""]]);
    const dave = createClient(
      SubscriptionService,
      createRouterTransport(routes(composed.served.registrations), {
        router: routerOptions(composed.served, 1000),
        transport: { interceptors: [bearer(await userToken("dave"))] },
      }),
    );
    const other = await dave.getMySubscription({});
    expect(other.overrides).toEqual([]);
    expect(other.grants).toEqual([]);
    expect(other.scheduledChange).toBeUndefined();
  });
});
