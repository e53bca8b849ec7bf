import { beforeAll, describe, expect, it } from "vitest";
import { CatalogSource } from "../../src/app/catalog-source.ts";
import { consumeUsage, lockOrder } from "../../src/db/usage-counters.ts";
import { sql } from "slonik";
import { z } from "zod";
import { findUsageLevel, findUsageLevels } from "../../src/db/usage-levels.ts";
import { Entitlements } from "../../src/app/entitlements.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
let entitlements: Entitlements;
const clock = new TestClock("2026-04-01T00:00:00Z");
const periodStart = new Date("2026-04-01T00:00:00Z");
beforeAll(async () => {
  database = await createTestDatabase();
  entitlements = new Entitlements(database.pool, await CatalogSource.load(database.pool, createLogger("silent")), clock);
});

describe("consumeUsage", () => {
  it("grants exactly the ceiling to racing calls", async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, () =>
        consumeUsage(database.pool, { userId: "race", metric: "jobs", periodStart, amount: 1n, ceiling: 10n, now: clock.now() }),
      ),
    );
    expect(results.filter((level) => level !== null)).toHaveLength(10);
    expect(new Set(results.flatMap((level) => (level === null ? [] : [level.used])))).toEqual(new Set(Array.from({ length: 10 }, (_, i) => BigInt(i + 1))));
    expect((await findUsageLevel(database.pool, { userId: "race", metric: "jobs", periodStart }, clock.now())).used).toBe(10n);
  });

  it("refuses an amount larger than the ceiling on a fresh row", async () => {
    const used = await consumeUsage(database.pool, { userId: "fresh", metric: "jobs", periodStart, amount: 11n, ceiling: 10n, now: clock.now() });
    expect(used).toBeNull();
    expect((await findUsageLevel(database.pool, { userId: "fresh", metric: "jobs", periodStart }, clock.now())).used).toBe(0n);
  });
});

describe("findUsageLevels", () => {
  it("reads many rows of many users in the order asked, 0 for rows that do not exist", async () => {
    for (const [userId, amount] of [["read-a", 3n], ["read-b", 5n]] as const) {
      await consumeUsage(database.pool, { userId, metric: "jobs", periodStart, amount, ceiling: 100n, now: clock.now() });
    }
    const levels = await findUsageLevels(database.pool, [
      { userId: "read-b", metric: "jobs", periodStart },
      { userId: "nobody", metric: "jobs", periodStart },
      { userId: "read-a", metric: "jobs", periodStart },
      { userId: "read-a", metric: "api_calls", periodStart },
    ], clock.now());
    expect(levels.map((level) => level.used)).toEqual([5n, 0n, 3n, 0n]);
    expect(levels.every((level) => level.reserved === 0n && level.reservedUntil === null)).toBe(true);
  });
});

describe("keyed increments", () => {
  it("count once when retries of one key race", async () => {
    const metric = entitlements.metric("jobs");
    const results = await Promise.all(
      Array.from({ length: 30 }, () =>
        entitlements.increment({ userId: "retrier", metric, amount: 3n, idempotencyKey: "job-42" }),
      ),
    );
    expect(results.filter((result) => !result.replayed)).toHaveLength(1);
    expect(new Set(results.map((result) => result.quota.used))).toEqual(new Set([3n]));
    expect((await findUsageLevel(database.pool, { userId: "retrier", metric: "jobs", periodStart }, clock.now())).used).toBe(3n);
  });

  it("grant exactly the limit when distinct keys race", async () => {
    const metric = entitlements.metric("jobs");
    const settled = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        entitlements.increment({ userId: "distinct-keys", metric, amount: 1n, idempotencyKey: `job-${i}` }),
      ),
    );
    expect(settled.filter((result) => result.status === "fulfilled")).toHaveLength(10);
    expect((await findUsageLevel(database.pool, { userId: "distinct-keys", metric: "jobs", periodStart }, clock.now())).used).toBe(10n);
  });
});

describe("lockOrder", () => {
  it("orders rows as PostgreSQL orders them in \"C\" collation, so SQL that locks by itself locks in the same order", async () => {
    const users = ["b", "a", "ab", "a\u00e9", "a\uffff", "a\u{1f600}", "A", "a z"];
    const periods = [new Date("2026-04-01T00:00:00Z"), new Date("1970-01-01T00:00:00Z"), new Date("2026-10-01T00:00:00Z")];
    const rows = users.flatMap((userId) => periods.flatMap((periodStart) => ["jobs", "api_calls"].map((metric) => ({ userId, metric, periodStart }))));
    const ordered = lockOrder(rows).rows.map((row) => `${row.userId}|${row.metric}|${row.periodStart.toISOString()}`);
    const byPostgres = await database.pool.anyFirst(sql.type(z.object({ key: z.string() }))`
      select w.u || '|' || w.m || '|' || to_char(w.p at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as key
      from unnest(
        ${sql.array(rows.map((row) => row.userId), "text")}::text[],
        ${sql.array(rows.map((row) => row.metric), "text")}::text[],
        ${sql.array(rows.map((row) => row.periodStart.toISOString()), "timestamptz")}::timestamptz[]
      ) as w (u, m, p)
      order by w.u collate "C", w.m collate "C", w.p
    `);
    expect(ordered).toEqual(byPostgres);
  });
});
