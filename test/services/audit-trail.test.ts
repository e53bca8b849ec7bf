import { describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { sql } from "slonik";
import { AccountStatus } from "../../gen/entitlements/v1/account_pb.js";
import { refusal } from "../support/refusals.ts";
import { startAdminTestServer } from "../support/server.ts";

/** AdminService's audit trail: ListAuditEvents, and the events every administrative change writes. */
const { server, admin, entitlements } = await startAdminTestServer();

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
