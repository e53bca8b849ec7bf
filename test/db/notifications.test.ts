import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "slonik";
import { notifyAccountChanged, NotificationListener } from "../../src/db/notifications.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { terminateConnections } from "../support/faults.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
let listener: NotificationListener;
const changed: string[] = [];
const listening: boolean[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  listener = new NotificationListener(
    database.sessionUrl,
    { onAccountChanged: (userId) => changed.push(userId), onCatalogChanged: () => changed.push("<catalog>"), onListening: (on) => listening.push(on) },
    createLogger("silent"),
  );
  await listener.start();
});

afterAll(() => listener.stop());

describe("NotificationListener", () => {
  it("hears account changes when their transaction commits, and not before", async () => {
    await database.pool.transaction(async (tx) => {
      await notifyAccountChanged(tx, "committed-user");
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(changed).not.toContain("committed-user");
    });
    await expect.poll(() => changed).toContain("committed-user");
  });

  it("hears nothing of a rolled back change", async () => {
    await database.pool
      .transaction(async (tx) => {
        await notifyAccountChanged(tx, "rolled-back-user");
        throw new Error("roll back");
      })
      .catch(() => {});
    await database.pool.query(sql.unsafe`select pg_notify('entitlements_account', 'marker')`);
    await expect.poll(() => changed).toContain("marker");
    expect(changed).not.toContain("rolled-back-user");
  });

  it("says when it stops listening, and listens again by itself", async () => {
    expect(listening).toEqual([true]);
    await terminateConnections(database.sessionUrl);
    await expect.poll(() => listening, { timeout: 5000 }).toEqual([true, false, true]);
    await database.pool.query(sql.unsafe`select pg_notify('entitlements_account', 'after-reconnect')`);
    await expect.poll(() => changed).toContain("after-reconnect");
  });
});
