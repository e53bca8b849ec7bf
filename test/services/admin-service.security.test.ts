import { describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { refusal } from "../support/refusals.ts";
import { adminClient, startAdminTestServer } from "../support/server.ts";
import { SERVICE_TOKEN, userToken } from "../support/service.ts";

/** Who may call AdminService: superadmins only, by user token. */
const { server, admin, entitlements } = await startAdminTestServer();

describe("refusals", () => {
  it("needs a credential", async () => {
    expect((await refusal(adminClient(server, undefined).getPlatformStats({}))).code).toBe(Code.Unauthenticated);
  });

  it("is closed to service tokens", async () => {
    expect((await refusal(adminClient(server, SERVICE_TOKEN).getPlatformStats({}))).code).toBe(Code.Unauthenticated);
  });

  it("is closed to users who are not superadmins, on every RPC", async () => {
    await entitlements.incrementUsage({ userId: "plain-user", metric: "jobs", amount: 1n });
    const client = adminClient(server, await userToken("plain-user"));
    const calls = [
      () => client.listAccounts({}),
      () => client.getAccount({ userId: "plain-user" }),
      () => client.suspendAccount({ userId: "plain-user", reason: "x" }),
      () => client.reactivateAccount({ userId: "plain-user" }),
      () => client.resetUsage({ userId: "plain-user" }),
      () => client.revokeSessions({ userId: "plain-user" }),
      () => client.getPlatformStats({}),
      () => client.listAuditEvents({}),
    ];
    for (const call of calls) {
      expect((await refusal(call())).code).toBe(Code.PermissionDenied);
    }
    expect((await entitlements.checkQuota({ userId: "plain-user", metric: "jobs" })).quota?.used).toBe(1n);
  });

  it("is closed to a superadmin whose rights were withdrawn", async () => {
    await server.administration.setSuperadmin("cli", "former-root", true);
    const client = adminClient(server, await userToken("former-root"));
    await client.getPlatformStats({});
    await server.administration.setSuperadmin("cli", "former-root", false);
    expect((await refusal(client.getPlatformStats({}))).code).toBe(Code.PermissionDenied);
  });

  it("does not let a superadmin suspend themselves", async () => {
    expect((await refusal(admin.suspendAccount({ userId: "root", reason: "oops" }))).code).toBe(Code.FailedPrecondition);
  });

  it("answers not_found for an account never seen, and audits nothing", async () => {
    expect((await refusal(admin.suspendAccount({ userId: "ghost", reason: "x" }))).code).toBe(Code.NotFound);
    expect((await refusal(admin.getAccount({ userId: "ghost" }))).code).toBe(Code.NotFound);
    expect((await admin.listAuditEvents({ userId: "ghost" })).events).toEqual([]);
  });
});
