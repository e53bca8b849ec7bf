import { sql } from "slonik";
import { beforeAll, describe, expect, it } from "vitest";
import { consumeUsageOnceBatch, type KeyedConsumption } from "../../src/db/idempotency-keys.ts";
import { findGrants, insertGrant } from "../../src/db/usage-grants.ts";
import { consumeUsageBatch, decideConsumption, type Consumption } from "../../src/db/usage-counters.ts";
import { ensureAccount } from "../../src/db/accounts.ts";
import { NotificationListener } from "../../src/db/notifications.ts";
import { MAX_USAGE } from "../../src/domain/quota.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
const now = new Date("2026-04-10T00:00:00Z");
const periodStart = new Date("2026-04-01T00:00:00Z");

beforeAll(async () => {
  database = await createTestDatabase();
});

const consumption = (userId: string, amount: bigint, ceiling: bigint, metric = "jobs"): Consumption => ({ userId, metric, periodStart, amount, ceiling, now });

async function grant(userId: string, amount: bigint, key: string, expiresAt: Date | null = null, metric = "jobs") {
  await ensureAccount(database.pool, userId, now);
  const { grant } = await insertGrant(database.pool, {
    userId,
    metric,
    amount,
    expiresAt,
    idempotencyKey: key,
    reason: "test",
    createdBy: "test",
    createdAt: new Date(now.getTime() - 1000),
  });
  return grant.id;
}

async function remainingById(userId: string): Promise<Map<string, bigint>> {
  return new Map((await findGrants(database.pool, userId, { includeSpent: true, at: now })).map((g) => [g.id, g.remaining]));
}

describe("a lone increment past its ceiling", () => {
  it("draws what the allowance cannot cover, earliest expiry first, never an expired grant", async () => {
    const expired = await grant("lone", 100n, "expired", new Date(now.getTime() - 1));
    const lasting = await grant("lone", 5n, "lasting");
    const early = await grant("lone", 3n, "early", new Date("2026-05-01T00:00:00Z"));
    const late = await grant("lone", 3n, "late", new Date("2026-06-01T00:00:00Z"));
    expect(await decideConsumption(database.pool, consumption("lone", 8n, 10n))).toEqual({ granted: true, used: 8n, grantRemaining: null, reserved: 0n });
    expect(await decideConsumption(database.pool, consumption("lone", 6n, 10n))).toEqual({ granted: true, used: 14n, grantRemaining: 7n, reserved: 0n });
    expect(await remainingById("lone")).toEqual(new Map([[expired, 100n], [early, 0n], [late, 2n], [lasting, 5n]]));
    expect(await decideConsumption(database.pool, consumption("lone", 8n, 10n))).toEqual({ granted: false, used: 14n, grantRemaining: 7n, reserved: 0n });
    expect(await decideConsumption(database.pool, consumption("lone", 7n, 10n))).toEqual({ granted: true, used: 21n, grantRemaining: 0n, reserved: 0n });
  });

  it("ignores grants when the metric is unlimited", async () => {
    await grant("unlimited", 5n, "g");
    expect(await decideConsumption(database.pool, consumption("unlimited", 2n, MAX_USAGE))).toEqual({ granted: true, used: 2n, grantRemaining: null, reserved: 0n });
    expect((await findGrants(database.pool, "unlimited", { includeSpent: false, at: now }))[0]?.remaining).toBe(5n);
  });
});

describe("a batch", () => {
  it("draws on grants in arrival order, per user, within one statement", async () => {
    await grant("batch-a", 4n, "a");
    await grant("batch-b", 1n, "b");
    const decisions = await consumeUsageBatch(database.pool, [
      consumption("batch-a", 9n, 10n),
      consumption("batch-b", 12n, 10n),
      consumption("batch-a", 3n, 10n),
      consumption("batch-b", 11n, 10n),
      consumption("batch-a", 3n, 10n),
      consumption("batch-b", 1n, 10n),
    ]);
    expect(decisions).toEqual([
      { granted: true, used: 9n, grantRemaining: null, reserved: 0n },
      { granted: false, used: 0n, grantRemaining: 1n, reserved: 0n },
      { granted: true, used: 12n, grantRemaining: 2n, reserved: 0n },
      { granted: true, used: 11n, grantRemaining: 0n, reserved: 0n },
      { granted: false, used: 12n, grantRemaining: 2n, reserved: 0n },
      { granted: false, used: 11n, grantRemaining: 0n, reserved: 0n },
    ]);
    const used = await database.pool.anyFirst(sql.unsafe`select used from usage_counters where user_id in ('batch-a', 'batch-b') order by user_id`);
    expect(used).toEqual([12n, 11n]);
  });

  it("under keys decides each as alone, and a replay draws nothing", async () => {
    await grant("keyed", 5n, "g");
    const keyed = (amount: bigint, key: string): KeyedConsumption => ({
      ...consumption("keyed", amount, 10n),
      key,
      limit: 10n,
      expiresAt: new Date("2026-05-15T00:00:00Z"),
    });
    const outcomes = await consumeUsageOnceBatch(database.pool, [keyed(12n, "x"), keyed(12n, "x"), keyed(4n, "y"), keyed(3n, "z")]);
    expect(outcomes.map((o) => (o.kind === "replayed" ? [o.kind, o.first.usedAfter] : [o.kind, o.used, o.grantRemaining]))).toEqual([
      ["granted", 12n, 3n],
      ["replayed", 12n],
      ["refused", 12n, 3n],
      ["granted", 15n, 0n],
    ]);
  });
});

describe("a draw", () => {
  it("tells every replica, on commit, that the account changed; an increment within the allowance does not", async () => {
    await grant("notified", 5n, "g");
    const changed: string[] = [];
    const listener = new NotificationListener(
      database.sessionUrl,
      { onAccountChanged: (userId) => changed.push(userId), onCatalogChanged: () => undefined, onListening: () => undefined },
      createLogger("silent"),
    );
    await listener.start();
    try {
      await decideConsumption(database.pool, consumption("quiet", 2n, 10n));
      await decideConsumption(database.pool, consumption("notified", 12n, 10n));
      await expect.poll(() => changed).toContain("notified");
      expect(changed).not.toContain("quiet");
    } finally {
      await listener.stop();
    }
  });
});
