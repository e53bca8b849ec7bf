import { beforeAll, describe, expect, it } from "vitest";
import type { Administration } from "../../src/app/administration.ts";
import type { SignIns } from "../../src/app/sign-ins.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { composeTestService } from "../support/service.ts";

/** Administration and sign-ins as composed for the service, on a database of their own. */
let database: TestDatabase;
let administration: Administration;
let signIns: SignIns;
const clock = new TestClock("2026-07-01T09:00:00Z");

beforeAll(async () => {
  database = await createTestDatabase();
  ({ administration, signIns } = await composeTestService(database.pool, clock));
  for (const userId of ["page-a", "page-b", "page-c", "page-d", "page-e"]) {
    await signIns.admit({ userId, issuedAt: clock.now(), expiresAt: undefined, email: `${userId}@example.com` });
  }
});

const listPage = (pageToken: string) =>
  administration.listAccounts({ query: "page-", planCode: undefined, status: undefined, pageSize: 2, pageToken });

describe("account pages", () => {
  it("walk every account once, in order, and end with an empty token", async () => {
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const page = await listPage(token);
      seen.push(...page.accounts.map((account) => account.userId));
      token = page.nextPageToken;
      pages += 1;
    } while (token !== "" && pages < 10);
    expect(seen).toEqual(["page-a", "page-b", "page-c", "page-d", "page-e"]);
    expect(pages).toBe(3);
  });

  it("refuse a token issued for another query", async () => {
    const { nextPageToken } = await listPage("");
    await expect(
      administration.listAccounts({ query: "other", planCode: undefined, status: undefined, pageSize: 2, pageToken: nextPageToken }),
    ).rejects.toMatchObject({ name: "InvalidArgumentError" });
  });
});

describe("changes to an account", () => {
  it("are audited, newest first, in pages of their own", async () => {
    await administration.suspend("root", "page-a", "chargeback");
    await administration.reactivate("root", "page-a");
    const first = await administration.auditEvents({ userId: "page-a", pageSize: 1, pageToken: "" });
    expect(first.events.map((event) => event.action)).toEqual(["account.reactivate"]);
    const second = await administration.auditEvents({ userId: "page-a", pageSize: 1, pageToken: first.nextPageToken });
    expect(second.events.map((event) => [event.action, event.reason])).toEqual([["account.suspend", "chargeback"]]);
    expect(second.nextPageToken).toBe("");
  });

  it("refuse an account that does not exist, and audit nothing", async () => {
    await expect(administration.suspend("root", "nobody", "test")).rejects.toMatchObject({ name: "UnknownResourceError" });
    expect((await administration.auditEvents({ userId: "nobody", pageSize: 10, pageToken: "" })).events).toEqual([]);
  });
});

describe("sign-ins", () => {
  it("admit a user until their sessions are revoked, then only tokens issued after", async () => {
    const issuedAt = new Date(clock.now().getTime() - 1000);
    expect(await signIns.admit({ userId: "page-b", issuedAt, expiresAt: undefined, email: undefined })).toBe(true);
    await administration.revokeSessions("root", "page-b");
    expect(await signIns.admit({ userId: "page-b", issuedAt, expiresAt: undefined, email: undefined })).toBe(false);
    clock.advance(2000);
    expect(await signIns.admit({ userId: "page-b", issuedAt: clock.now(), expiresAt: undefined, email: undefined })).toBe(true);
  });

  it("tell superadmins in good standing", async () => {
    expect(await signIns.isSuperadmin("page-c")).toBe(false);
    await administration.setSuperadmin("cli", "page-c", true);
    expect(await signIns.isSuperadmin("page-c")).toBe(true);
  });
});
