import pg from "pg";
import { StatementTimeoutError } from "slonik";
import { beforeAll, describe, expect, it } from "vitest";
import { consumeUsageOnce, type KeyedConsumption } from "../../src/db/idempotency-keys.ts";
import type { Consumption } from "../../src/db/usage-counters.ts";
import { findUsageLevel } from "../../src/db/usage-levels.ts";
import { IncrementBatcher } from "../../src/db/increment-batcher.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
let batcher: IncrementBatcher;
const now = new Date("2026-04-10T00:00:00Z");
const periodStart = new Date("2026-04-01T00:00:00Z");

beforeAll(async () => {
  database = await createTestDatabase();
  batcher = new IncrementBatcher(database.pool, { maxConcurrentBatches: 1 });
});

const consumption = (userId: string, amount: bigint, ceiling: bigint, metric = "jobs"): Consumption => ({
  userId,
  metric,
  periodStart: metric === "storage_mb" ? new Date(0) : periodStart,
  amount,
  ceiling,
  now,
});

describe("IncrementBatcher", () => {
  it("decides the increments of one batch in arrival order", async () => {
    // The first goes alone; the three that arrive meanwhile share the next transaction.
    const decisions = await Promise.all([
      batcher.submit(consumption("ordered", 1n, 10n)),
      batcher.submit(consumption("ordered", 6n, 10n)),
      batcher.submit(consumption("ordered", 5n, 10n)),
      batcher.submit(consumption("ordered", 3n, 10n)),
    ]);
    expect(decisions).toEqual([
      { granted: true, used: 1n, grantRemaining: null, reserved: 0n },
      { granted: true, used: 7n, grantRemaining: null, reserved: 0n },
      { granted: false, used: 7n, grantRemaining: 0n, reserved: 0n },
      { granted: true, used: 10n, grantRemaining: null, reserved: 0n },
    ]);
    expect((await findUsageLevel(database.pool, { userId: "ordered", metric: "jobs", periodStart }, new Date())).used).toBe(10n);
  });

  it("grants exactly the ceiling to hundreds of racing increments over many users", async () => {
    const users = ["r1", "r2", "r3", "r4"];
    const decisions = await Promise.all(
      Array.from({ length: 400 }, (_, i) => batcher.submit(consumption(users[i % users.length]!, 1n, 10n))),
    );
    expect(decisions.filter((decision) => decision.granted)).toHaveLength(40);
    for (const user of users) {
      expect((await findUsageLevel(database.pool, { userId: user, metric: "jobs", periodStart }, new Date())).used).toBe(10n);
    }
  });

  it("lets gauges go down in a batch, never below zero", async () => {
    const decisions = await Promise.all([
      batcher.submit(consumption("gauge", 50n, 100n, "storage_mb")),
      batcher.submit(consumption("gauge", -80n, 100n, "storage_mb")),
      batcher.submit(consumption("gauge", 120n, 100n, "storage_mb")),
      batcher.submit(consumption("gauge", 30n, 100n, "storage_mb")),
    ]);
    expect(decisions.map((decision) => [decision.granted, decision.used])).toEqual([
      [true, 50n],
      [true, 0n],
      [false, 0n],
      [true, 30n],
    ]);
  });

  it("stays exact with several batches in flight across users and rows", async () => {
    const parallel = new IncrementBatcher(database.pool, { maxConcurrentBatches: 4, maxBatch: 8 });
    const decisions = await Promise.all(
      Array.from({ length: 300 }, (_, i) => parallel.submit(consumption(`p${i % 5}`, BigInt((i % 3) + 1), 25n))),
    );
    for (let user = 0; user < 5; user++) {
      const granted = decisions
        .map((decision, i) => ({ decision, i }))
        .filter(({ decision, i }) => i % 5 === user && decision.granted)
        .reduce((sum, { i }) => sum + BigInt((i % 3) + 1), 0n);
      const used = (await findUsageLevel(database.pool, { userId: `p${user}`, metric: "jobs", periodStart }, new Date())).used;
      expect(used).toBe(granted);
      expect(used).toBeLessThanOrEqual(25n);
    }
  });

  it("gives up with its callers when every caller of a batch set a deadline", async () => {
    await batcher.submit(consumption("bounded", 1n, 100n));
    const blocker = new pg.Client({ connectionString: database.sessionUrl });
    await blocker.connect();
    try {
      await blocker.query("begin");
      await blocker.query("lock table usage_counters in access exclusive mode");
      const started = performance.now();
      const deadline = Date.now() + 300;
      const outcomes = await Promise.allSettled([
        batcher.submit(consumption("bounded", 1n, 100n), deadline),
        batcher.submit(consumption("bounded", 1n, 100n), deadline - 100),
      ]);
      // The statement timeout is 5 s; the batch ends with the last of its callers' deadlines.
      expect(outcomes.map((outcome) => outcome.status)).toEqual(["rejected", "rejected"]);
      expect(outcomes.map((outcome) => (outcome as PromiseRejectedResult).reason)).toEqual([
        expect.any(StatementTimeoutError),
        expect.any(StatementTimeoutError),
      ]);
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      await blocker.query("rollback");
      await blocker.end();
    }
    expect((await findUsageLevel(database.pool, { userId: "bounded", metric: "jobs", periodStart }, new Date())).used).toBe(1n);
  });
});

describe("IncrementBatcher, under idempotency keys", () => {
  const expiresAt = new Date("2026-05-15T00:00:00Z");
  const keyed = (userId: string, amount: bigint, key: string, ceiling = 10n): KeyedConsumption => ({
    ...consumption(userId, amount, ceiling),
    key,
    limit: ceiling,
    expiresAt,
  });

  it("decides a batch in arrival order, each key as if alone: a repeated key replays, a refused one is decided afresh", async () => {
    // The first goes alone; the five that arrive meanwhile share the next statement.
    const outcomes = await Promise.all([
      batcher.submitKeyed(keyed("keyed", 4n, "a")),
      batcher.submitKeyed(keyed("keyed", 5n, "b")),
      batcher.submitKeyed(keyed("keyed", 5n, "b")),
      batcher.submitKeyed(keyed("keyed", 5n, "c")),
      batcher.submitKeyed(keyed("keyed", 1n, "c")),
      batcher.submitKeyed(keyed("keyed", 4n, "a")),
    ]);
    expect(outcomes).toEqual([
      { kind: "granted", used: 4n, grantRemaining: null, reserved: 0n },
      { kind: "granted", used: 9n, grantRemaining: null, reserved: 0n },
      { kind: "replayed", first: expect.objectContaining({ amount: 5n, usedAfter: 9n, limit: 10n }) },
      { kind: "refused", used: 9n, grantRemaining: 0n, reserved: 0n },
      { kind: "granted", used: 10n, grantRemaining: null, reserved: 0n },
      { kind: "replayed", first: expect.objectContaining({ amount: 4n, usedAfter: 4n }) },
    ]);
    expect((await findUsageLevel(database.pool, { userId: "keyed", metric: "jobs", periodStart }, new Date())).used).toBe(10n);
  });

  it("counts each key once with batches in flight and retries racing their first call, alone or batched", async () => {
    const parallel = new IncrementBatcher(database.pool, { maxConcurrentBatches: 4, maxBatch: 8 });
    const keys = Array.from({ length: 120 }, (_, i) => ({ userId: `kp${i % 5}`, key: `key-${i}`, amount: BigInt((i % 3) + 1) }));
    // Every key three times through the batches (15 and 33 places apart: in batches running at
    // once, or one after the other), and once more alone, all at once.
    const submissions = keys.flatMap((key, i) => [key, keys[(i + 5) % keys.length]!, keys[(i + 11) % keys.length]!]);
    const outcomes = await Promise.all([
      ...submissions.map(({ userId, key, amount }) => parallel.submitKeyed(keyed(userId, amount, key, 60n))),
      ...keys.map(({ userId, key, amount }) => consumeUsageOnce(database.pool, keyed(userId, amount, key, 60n))),
    ]);
    const counted = new Map<string, bigint>();
    outcomes.forEach((outcome, index) => {
      const { userId, key, amount } = index < submissions.length ? submissions[index]! : keys[index - submissions.length]!;
      if (outcome.kind === "granted") {
        expect(counted.has(key), `${key} counted twice`).toBe(false);
        counted.set(key, amount);
        counted.set(userId, (counted.get(userId) ?? 0n) + amount);
      }
    });
    for (let user = 0; user < 5; user++) {
      const used = (await findUsageLevel(database.pool, { userId: `kp${user}`, metric: "jobs", periodStart }, new Date())).used;
      expect(used).toBe(counted.get(`kp${user}`) ?? 0n);
      expect(used).toBeLessThanOrEqual(60n);
    }
  });
});
