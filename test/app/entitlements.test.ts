import { beforeAll, describe, expect, it } from "vitest";
import { CatalogSource } from "../../src/app/catalog-source.ts";
import type { UsageLevel } from "../../src/domain/quota.ts";
import { Entitlements } from "../../src/app/entitlements.ts";
import { IncrementBatcher } from "../../src/db/increment-batcher.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { ReplicaCache } from "../../src/app/replica-cache.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

/** Two replicas on one database, each with its own usage cache on a clock of its own. */
let database: TestDatabase;
const clock = new TestClock("2026-05-20T10:00:00Z");
const cacheTime = { a: 0, b: 0 };
let replicaA: Entitlements;
let replicaB: Entitlements;

beforeAll(async () => {
  database = await createTestDatabase();
  const catalog = await CatalogSource.load(database.pool, createLogger("silent"));
  const replica = (now: () => number) =>
    new Entitlements(database.pool, catalog, clock, {
      usage: new ReplicaCache<UsageLevel>({ ttlMs: 1000, maxEntries: 100, enabled: true, now }),
      batcher: new IncrementBatcher(database.pool),
      coalesceReads: true,
    });
  replicaA = replica(() => cacheTime.a);
  replicaB = replica(() => cacheTime.b);
});

const used = async (replica: Entitlements, userId: string) => (await replica.checkQuota(userId, replica.metric("jobs"), 1n)).quota.used;
const increment = (replica: Entitlements, userId: string, amount: bigint, idempotencyKey?: string) =>
  replica.increment({ userId, metric: replica.metric("jobs"), amount, idempotencyKey });

describe("cached usage", () => {
  it("shows a replica its own increments at once, keyed or not", async () => {
    expect(await used(replicaA, "own")).toBe(0n);
    await increment(replicaA, "own", 2n);
    expect(await used(replicaA, "own")).toBe(2n);
    await increment(replicaA, "own", 3n, "key-1");
    expect(await used(replicaA, "own")).toBe(5n);
  });

  it("shows another replica's increments once its entry expires (USAGE_CACHE_TTL_MS)", async () => {
    expect(await used(replicaA, "other")).toBe(0n);
    await increment(replicaB, "other", 4n);
    expect(await used(replicaB, "other")).toBe(4n);
    expect(await used(replicaA, "other")).toBe(0n); // within the bound: still the cached amount
    cacheTime.a += 1000;
    expect(await used(replicaA, "other")).toBe(4n);
  });

  it("reads afresh once the account's change notification arrives", async () => {
    expect(await used(replicaA, "reset")).toBe(0n);
    await increment(replicaB, "reset", 1n);
    replicaA.forget("reset");
    expect(await used(replicaA, "reset")).toBe(1n);
  });

  it("keeps no other user's or period's amount", async () => {
    await increment(replicaA, "first", 6n);
    expect(await used(replicaA, "second")).toBe(0n);
    clock.set("2026-06-01T00:00:00Z"); // a new month: a new counter
    expect(await used(replicaA, "first")).toBe(0n);
  });
});
