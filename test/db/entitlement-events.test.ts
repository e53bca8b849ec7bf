import { sql } from "slonik";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureAccount } from "../../src/db/accounts.ts";
import {
  deleteOldEvents,
  entitlementEventsAfter,
  feedBounds,
  recordEntitlementEvent,
  sequenceEntitlementEvents,
  type NewEntitlementEvent,
} from "../../src/db/entitlement-events.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
const at = new Date("2026-04-10T00:00:00Z");

beforeAll(async () => {
  database = await createTestDatabase();
});

const event = (userId: string): NewEntitlementEvent => ({ userId, type: "entitlements.plan_changed", at, entitlements: null });
const all = async () => entitlementEventsAfter(database.pool, { after: 0n, through: 1_000_000n, limit: 1000 });

/** A transaction held open until `release` is called, with the event it recorded. */
function openTransaction(userId: string) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let recorded!: () => void;
  const written = new Promise<void>((resolve) => (recorded = resolve));
  const done = database.pool.transaction(async (tx) => {
    await recordEntitlementEvent(tx, event(userId));
    recorded();
    await released;
  });
  return { written, release, done };
}

describe("the change feed outbox", () => {
  it("raises the account's revision by one per event, and refuses an event for an account that does not exist", async () => {
    await ensureAccount(database.pool, "rev-user", at);
    expect(await recordEntitlementEvent(database.pool, event("rev-user"))).toBe(1n);
    expect(await recordEntitlementEvent(database.pool, event("rev-user"))).toBe(2n);
    await expect(recordEntitlementEvent(database.pool, event("nobody"))).rejects.toThrow(/foreign key/);
  });

  it("gives positions only to committed events, so a reader never sees a later position before an earlier one", async () => {
    await ensureAccount(database.pool, "slow", at);
    await ensureAccount(database.pool, "fast", at);
    await sequenceEntitlementEvents(database.pool, 1000);
    const head = (await feedBounds(database.pool)).head;
    const slow = openTransaction("slow");
    await slow.written;
    await recordEntitlementEvent(database.pool, event("fast"));
    expect(await sequenceEntitlementEvents(database.pool, 1000)).toBe(1);
    const afterFast = (await all()).filter((row) => row.position > head);
    expect(afterFast.map((row) => [row.userId, row.position])).toEqual([["fast", head + 1n]]);
    slow.release();
    await slow.done;
    expect(await sequenceEntitlementEvents(database.pool, 1000)).toBe(1);
    expect((await all()).filter((row) => row.position > head).map((row) => [row.userId, row.position])).toEqual([
      ["fast", head + 1n],
      ["slow", head + 2n],
    ]);
    expect((await feedBounds(database.pool)).head).toBe(head + 2n);
  });

  it("sequences concurrent writers and sequencers into one gap-free order, each account's events in revision order", async () => {
    const users = ["c-1", "c-2", "c-3"];
    for (const userId of users) await ensureAccount(database.pool, userId, at);
    const { head } = await feedBounds(database.pool);
    await Promise.all([
      ...Array.from({ length: 60 }, (_, index) => recordEntitlementEvent(database.pool, event(users[index % 3]!))),
      ...Array.from({ length: 10 }, () => sequenceEntitlementEvents(database.pool, 7)),
    ]);
    while ((await sequenceEntitlementEvents(database.pool, 7)) > 0);
    const rows = (await all()).filter((row) => row.position > head);
    expect(rows.map((row) => row.position)).toEqual(Array.from({ length: 60 }, (_, index) => head + BigInt(index) + 1n));
    for (const userId of users) {
      expect(rows.filter((row) => row.userId === userId).map((row) => row.revision)).toEqual(Array.from({ length: 20 }, (_, index) => BigInt(index) + 1n));
    }
  });

  it("reads a range for some users only, and deletes old events a batch at a time, recording how far", async () => {
    const { head } = await feedBounds(database.pool);
    const some = await entitlementEventsAfter(database.pool, { after: 0n, through: head, userIds: ["slow"], limit: 10 });
    expect(some.map((row) => row.userId)).toEqual(["slow"]);
    await database.pool.query(sql.unsafe`update entitlement_events set occurred_at = occurred_at - interval '40 days' where position <= ${head - 1n}`);
    expect(await deleteOldEvents(database.pool, new Date(at.getTime() - 35 * 86_400_000))).toBe(Number(head - 1n));
    expect(await feedBounds(database.pool)).toEqual({ head, prunedThrough: head - 1n });
    expect((await all()).map((row) => row.position)).toEqual([head]);
  });
});
