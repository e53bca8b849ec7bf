import { beforeAll, describe, expect, it } from "vitest";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { AccountStatus } from "../../gen/entitlements/v1/account_pb.js";
import { DenialReason } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { refusal } from "../support/refusals.ts";
import { adminClient, startAdminTestServer } from "../support/server.ts";
import { userToken } from "../support/service.ts";

const { server, admin, entitlements } = await startAdminTestServer();

describe("suspension", () => {
  it("denies everything, and reactivation restores it with usage intact", async () => {
    const userId = "suspect";
    await entitlements.upgradePlan({ userId, planCode: "pro" });
    await entitlements.incrementUsage({ userId, metric: "jobs", amount: 5n });

    const suspended = await admin.suspendAccount({ userId, reason: "chargeback" });
    expect(suspended.account).toMatchObject({ userId, status: AccountStatus.SUSPENDED, suspendedReason: "chargeback" });

    expect(await entitlements.hasFeature({ userId, feature: "api_access" })).toMatchObject({ enabled: false });
    expect(await entitlements.checkQuota({ userId, metric: "jobs" })).toMatchObject({ allowed: false, denialReason: DenialReason.SUSPENDED });
    expect((await entitlements.getPlan({ userId })).accountStatus).toBe(AccountStatus.SUSPENDED);
    for (const call of [
      () => entitlements.incrementUsage({ userId, metric: "jobs", amount: 1n }),
      () => entitlements.incrementUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "k" }),
      () => entitlements.upgradePlan({ userId, planCode: "enterprise" }),
    ]) {
      const error = await refusal(call());
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.findDetails(ErrorInfoSchema)[0]?.reason).toBe("ACCOUNT_SUSPENDED");
    }
    const me = await fetch(`${server.httpUrl}/v1/subscription/me`, { headers: { authorization: `Bearer ${await userToken(userId)}` } });
    expect(((await me.json()) as { accountStatus: string }).accountStatus).toBe("ACCOUNT_STATUS_SUSPENDED");

    const reactivated = await admin.reactivateAccount({ userId });
    expect(reactivated.account).toMatchObject({ status: AccountStatus.ACTIVE, suspendedReason: "" });
    expect(await entitlements.hasFeature({ userId, feature: "priority_support" })).toMatchObject({ enabled: true, planCode: "pro" });
    expect((await entitlements.incrementUsage({ userId, metric: "jobs", amount: 1n })).quota?.used).toBe(6n);
  });

  it("requires a reason", async () => {
    await entitlements.incrementUsage({ userId: "reasonless", metric: "jobs", amount: 1n });
    expect((await refusal(admin.suspendAccount({ userId: "reasonless", reason: "  " }))).code).toBe(Code.InvalidArgument);
  });

  it("refuses a reason PostgreSQL could not store, for any user id (found by the fuzz test)", async () => {
    await entitlements.incrementUsage({ userId: "nul-reason", metric: "jobs", amount: 1n });
    for (const userId of ["nul-reason", "%"]) {
      expect((await refusal(admin.suspendAccount({ userId, reason: "a\u0000b" }))).code).toBe(Code.InvalidArgument);
    }
  });

  it("locks out a suspended superadmin", async () => {
    await server.administration.setSuperadmin("cli", "rogue-root", true);
    await admin.suspendAccount({ userId: "rogue-root", reason: "compromised" });
    expect((await refusal(adminClient(server, await userToken("rogue-root")).getPlatformStats({}))).code).toBe(Code.PermissionDenied);
  });
});

describe("ResetUsage", () => {
  it("clears every counter of the current period, never the gauges", async () => {
    const userId = "limited";
    await entitlements.incrementUsage({ userId, metric: "jobs", amount: 10n });
    await entitlements.incrementUsage({ userId, metric: "api_calls", amount: 100n });
    await entitlements.incrementUsage({ userId, metric: "storage_mb", amount: 50n });
    const { quotas } = await admin.resetUsage({ userId });
    expect(Object.fromEntries(quotas.map((quota) => [quota.metric, quota.used]))).toEqual({
      api_calls: 0n,
      compute_minutes: 0n,
      jobs: 0n,
      storage_mb: 50n,
    });
    expect((await entitlements.incrementUsage({ userId, metric: "jobs", amount: 10n })).quota?.used).toBe(10n);
  });

  it("clears one named counter", async () => {
    const userId = "one-metric";
    await entitlements.incrementUsage({ userId, metric: "jobs", amount: 3n });
    await entitlements.incrementUsage({ userId, metric: "api_calls", amount: 4n });
    const { quotas } = await admin.resetUsage({ userId, metric: "jobs" });
    expect(quotas.find((quota) => quota.metric === "jobs")?.used).toBe(0n);
    expect(quotas.find((quota) => quota.metric === "api_calls")?.used).toBe(4n);
  });

  it("refuses to reset a gauge or an unknown metric", async () => {
    expect((await refusal(admin.resetUsage({ userId: "one-metric", metric: "storage_mb" }))).code).toBe(Code.InvalidArgument);
    expect((await refusal(admin.resetUsage({ userId: "one-metric", metric: "teleports" }))).code).toBe(Code.NotFound);
  });
});

describe("RevokeSessions", () => {
  it("refuses tokens issued before it on every user path, and honours later ones", async () => {
    const userId = "revoked";
    await server.administration.setSuperadmin("cli", userId, true);
    server.clock.set(new Date());
    try {
      const now = Math.floor(Date.now() / 1000);
      const old = await userToken(userId, { claims: { iat: now - 5 } });
      expect((await fetch(`${server.httpUrl}/v1/subscription/me`, { headers: { authorization: `Bearer ${old}` } })).status).toBe(200);

      const { tokensValidAfter } = await admin.revokeSessions({ userId });
      const validAfter = timestampDate(tokensValidAfter!).getTime() / 1000;
      expect(validAfter).toBeGreaterThan(now - 5);

      for (const path of ["/v1/subscription/me", "/v1/subscription/usage", "/v1/admin/stats"]) {
        const response = await fetch(`${server.httpUrl}${path}`, { headers: { authorization: `Bearer ${old}` } });
        expect(response.status, path).toBe(401);
      }
      const fresh = await userToken(userId, { claims: { iat: validAfter } });
      expect((await fetch(`${server.httpUrl}/v1/subscription/me`, { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(200);
    } finally {
      server.clock.set("2026-06-10T08:00:00Z");
    }
  });
});

describe("ListAccounts", () => {
  beforeAll(async () => {
    for (let i = 0; i < 25; i++) {
      await entitlements.incrementUsage({ userId: `page-${String(i).padStart(2, "0")}`, metric: "api_calls", amount: 1n });
    }
    await entitlements.upgradePlan({ userId: "page-03", planCode: "pro" });
    await entitlements.upgradePlan({ userId: "page-07", planCode: "enterprise", durationDays: 30 });
  });

  it("pages through every match in order, with no repeats", async () => {
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await admin.listAccounts({ query: "page-", pageSize: 10, pageToken });
      seen.push(...page.accounts.map((account) => account.userId));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `page-${String(i).padStart(2, "0")}`));
  });

  it("filters by current plan, free included", async () => {
    expect((await admin.listAccounts({ query: "page-", planCode: "pro" })).accounts.map((a) => a.userId)).toEqual(["page-03"]);
    expect((await admin.listAccounts({ query: "page-", planCode: "enterprise" })).accounts.map((a) => a.userId)).toEqual(["page-07"]);
    expect((await admin.listAccounts({ query: "page-", planCode: "free" })).accounts).toHaveLength(23);
  });

  it("filters by status", async () => {
    await admin.suspendAccount({ userId: "page-11", reason: "spam" });
    const suspended = await admin.listAccounts({ query: "page-", status: AccountStatus.SUSPENDED });
    expect(suspended.accounts.map((a) => a.userId)).toEqual(["page-11"]);
    await admin.reactivateAccount({ userId: "page-11" });
  });

  it("matches emails learnt from user tokens, and treats LIKE wildcards literally", async () => {
    await fetch(`${server.httpUrl}/v1/subscription/me`, {
      headers: { authorization: `Bearer ${await userToken("emailed", { claims: { email: "Grace@Example.com" } })}` },
    });
    expect((await admin.listAccounts({ query: "grace@" })).accounts.map((a) => [a.userId, a.email])).toEqual([["emailed", "grace@example.com"]]);
    expect((await admin.listAccounts({ query: "%" })).accounts).toEqual([]);
    expect((await admin.listAccounts({ query: "page_" })).accounts).toEqual([]);
  });

  it("refuses a forged token or one from another query", async () => {
    const first = await admin.listAccounts({ query: "page-", pageSize: 5 });
    expect((await refusal(admin.listAccounts({ query: "other", pageSize: 5, pageToken: first.nextPageToken }))).code).toBe(Code.InvalidArgument);
    expect((await refusal(admin.listAccounts({ pageToken: "bm9wZQ" }))).code).toBe(Code.InvalidArgument);
    // Well formed and bound to this query, but at a position no user id can hold.
    const forged = Buffer.from(JSON.stringify({ after: "a\u0000b", filters: ["", "", ""] })).toString("base64url");
    expect((await refusal(admin.listAccounts({ pageToken: forged }))).code).toBe(Code.InvalidArgument);
    expect((await refusal(admin.listAccounts({ pageSize: 5000 }))).code).toBe(Code.InvalidArgument);
  });
});

describe("GetAccount", () => {
  it("shows the account, its plan, history and usage", async () => {
    const userId = "detailed";
    await entitlements.upgradePlan({ userId, planCode: "enterprise" });
    await entitlements.upgradePlan({ userId, planCode: "pro", durationDays: 10 });
    await entitlements.incrementUsage({ userId, metric: "jobs", amount: 2n });
    const details = await admin.getAccount({ userId });
    expect(details.account).toMatchObject({ userId, status: AccountStatus.ACTIVE, isSuperadmin: false });
    expect(details.plan?.code).toBe("pro");
    expect(details.subscription?.planCode).toBe("pro");
    expect(details.history.map((subscription) => subscription.planCode)).toEqual(["pro", "enterprise"]);
    expect(details.usage.find((quota) => quota.metric === "jobs")).toMatchObject({ used: 2n, limit: 500n });
  });

  it("shows the account's overrides and every grant, spent and revoked ones included, with reasons", async () => {
    const userId = "with-terms";
    await entitlements.setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "deal #7" });
    const { grant } = await entitlements.grantUsage({ userId, metric: "jobs", amount: 3n, idempotencyKey: "g1", reason: "outage" });
    await entitlements.grantUsage({ userId, metric: "api_calls", amount: 9n, idempotencyKey: "g2", reason: "promo" });
    await entitlements.revokeGrant({ userId, grantId: grant!.id });
    const details = await admin.getAccount({ userId });
    expect(details.overrides.map((o) => [o.target.value, o.enabled, o.reason])).toEqual([["sso", true, "deal #7"]]);
    // Granted at the same instant (the test clock stands still): compared by metric.
    const grants = details.grants.map((g) => [g.metric, g.remaining, g.reason, g.revokedAt !== undefined]).sort();
    expect(grants).toEqual([
      ["api_calls", 9n, "promo", false],
      ["jobs", 0n, "outage", true],
    ]);
    const events = await admin.listAuditEvents({ userId });
    expect(events.events.map((event) => event.action)).toEqual(["grant.revoke", "grant.create", "grant.create", "override.set"]);
  });
});

describe("GetPlatformStats", () => {
  it("counts accounts, plans, revenue and usage with SQL aggregates", async () => {
    const before = await admin.getPlatformStats({});
    await entitlements.upgradePlan({ userId: "stats-pro", planCode: "pro" });
    await entitlements.upgradePlan({ userId: "stats-ent", planCode: "enterprise" });
    await entitlements.upgradePlan({ userId: "stats-suspended", planCode: "pro" });
    await admin.suspendAccount({ userId: "stats-suspended", reason: "fraud" });
    await entitlements.incrementUsage({ userId: "stats-pro", metric: "compute_minutes", amount: 42n });

    const after = await admin.getPlatformStats({});
    const byPlan = (stats: typeof after) => Object.fromEntries(stats.accountsByPlan.map((row) => [row.planCode, row.accounts]));
    expect(after.totalAccounts - before.totalAccounts).toBe(3n);
    expect(after.suspendedAccounts - before.suspendedAccounts).toBe(1n);
    expect(byPlan(after).pro! - byPlan(before).pro!).toBe(2n);
    expect(byPlan(after).enterprise! - byPlan(before).enterprise!).toBe(1n);
    expect(Object.values(byPlan(after)).reduce((sum, n) => sum + n, 0n)).toBe(after.totalAccounts);
    // The suspended account pays nothing.
    expect(after.monthlyRecurringRevenueCents - before.monthlyRecurringRevenueCents).toBe(1999n + 9999n);
    const usage = (stats: typeof after) => stats.usageThisPeriod.find((row) => row.metric === "compute_minutes")?.total ?? 0n;
    expect(usage(after) - usage(before)).toBe(42n);
    await admin.reactivateAccount({ userId: "stats-suspended" });
  });
});

describe("over HTTP under /v1/admin", () => {
  it("serves the same RPCs", async () => {
    const headers = { authorization: `Bearer ${await userToken("root")}`, "content-type": "application/json" };
    const list = await fetch(`${server.httpUrl}/v1/admin/accounts?query=page-&page_size=2`, { headers });
    expect(list.status).toBe(200);
    const body = (await list.json()) as { accounts: { userId: string }[]; nextPageToken: string };
    expect(body.accounts.map((account) => account.userId)).toEqual(["page-00", "page-01"]);
    expect(body.nextPageToken).not.toBe("");

    const suspend = await fetch(`${server.httpUrl}/v1/admin/accounts/page-20:suspend`, { method: "POST", headers, body: JSON.stringify({ reason: "via http" }) });
    expect(((await suspend.json()) as { account: { status: string } }).account.status).toBe("ACCOUNT_STATUS_SUSPENDED");
    // An enum in the query: its full name, or the short one in any case.
    for (const status of ["ACCOUNT_STATUS_SUSPENDED", "suspended", "Suspended"]) {
      const suspended = await fetch(`${server.httpUrl}/v1/admin/accounts?query=page-&status=${status}`, { headers });
      expect(suspended.status, status).toBe(200);
      expect(((await suspended.json()) as { accounts: { userId: string }[] }).accounts.map((account) => account.userId)).toEqual(["page-20"]);
    }
    expect((await fetch(`${server.httpUrl}/v1/admin/accounts?status=frozen`, { headers })).status).toBe(400);
    const reactivate = await fetch(`${server.httpUrl}/v1/admin/accounts/page-20:reactivate`, { method: "POST", headers, body: "{}" });
    expect(reactivate.status).toBe(200);

    const stats = await fetch(`${server.httpUrl}/v1/admin/stats`, { headers });
    expect(stats.headers.get("cache-control")).toBe("private, no-store");
    expect(((await stats.json()) as { totalAccounts: string }).totalAccounts).toMatch(/^[0-9]+$/);

    const forbidden = await fetch(`${server.httpUrl}/v1/admin/stats`, { headers: { authorization: `Bearer ${await userToken("page-01")}` } });
    expect(forbidden.status).toBe(403);
  });
});
