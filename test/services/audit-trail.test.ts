import { beforeAll, describe, expect, it } from "vitest";
import { Code, type Client } from "@connectrpc/connect";
import { sql } from "slonik";
import { AccountStatus } from "../../gen/entitlements/v1/account_pb.js";
import { AdminService } from "../../gen/entitlements/v1/admin_service_pb.js";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { createEntitlementClient } from "../../clients/node/src/index.ts";
import { refusal } from "../support/refusals.ts";
import { adminClient, startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN, userToken } from "../support/service.ts";

/** AdminService's audit trail: ListAuditEvents, and the events every administrative change writes. */
let server: TestServer;
let admin: Client<typeof AdminService>;
let entitlements: Client<typeof EntitlementService>;

beforeAll(async () => {
  server = await startTestServer({ start: "2026-06-10T08:00:00Z" });
  await server.administration.setSuperadmin("cli", "root", true);
  admin = adminClient(server, await userToken("root"));
  entitlements = createEntitlementClient({ baseUrl: server.httpUrl, token: SERVICE_TOKEN, protocol: "connect", timeoutMs: 30_000 });
});

describe("the audit trail", () => {
  it("records every action with its actor, newest first, in pages", async () => {
    const userId = "audited";
    await entitlements.incrementUsage({ userId, metric: "jobs", amount: 1n });
    await admin.suspendAccount({ userId, reason: "first" });
    await admin.reactivateAccount({ userId });
    await admin.resetUsage({ userId, metric: "jobs", reason: "billing dispute" });
    await admin.revokeSessions({ userId });
    const first = await admin.listAuditEvents({ userId, pageSize: 3 });
    expect(first.events.map((event) => [event.action, event.actorId, event.targetUserId])).toEqual([
      ["sessions.revoke", "root", userId],
      ["usage.reset", "root", userId],
      ["account.reactivate", "root", userId],
    ]);
    // The reason is the admin's; what was reset is a detail of the action.
    expect(first.events[1]).toMatchObject({ reason: "billing dispute", details: { metrics: "jobs" } });
    const second = await admin.listAuditEvents({ userId, pageSize: 3, pageToken: first.nextPageToken });
    expect(second.events.map((event) => [event.action, event.reason])).toEqual([["account.suspend", "first"]]);
    expect(second.nextPageToken).toBe("");
  });

  it("is written in the transaction of the change: no event, no change", async () => {
    const userId = "atomic";
    await entitlements.incrementUsage({ userId, metric: "jobs", amount: 1n });
    await server.pool.query(sql.unsafe`
      create function refuse_poison() returns trigger language plpgsql as $$
      begin
        if new.reason = 'poison' then raise exception 'audit refused'; end if;
        return new;
      end $$
    `);
    await server.pool.query(sql.unsafe`
      create trigger refuse_poison before insert on audit_events for each row execute function refuse_poison()
    `);
    expect((await refusal(admin.suspendAccount({ userId, reason: "poison" }))).code).toBe(Code.Internal);
    expect((await admin.getAccount({ userId })).account?.status).toBe(AccountStatus.ACTIVE);
    expect((await admin.listAuditEvents({ userId })).events).toEqual([]);
  });

  it("records superadmin grants from the command line", async () => {
    const events = await admin.listAuditEvents({ userId: "root" });
    expect(events.events.map((event) => [event.action, event.actorId])).toContainEqual(["superadmin.grant", "cli"]);
  });
});
