import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DatabasePool } from "slonik";
import { createEntitlementClient } from "../../clients/node/src/index.ts";
import { createDatabasePool } from "../../src/db/pool.ts";
import { systemClock } from "../../src/domain/clock.ts";
import { listenAll, type Listener } from "../../src/transport/listeners.ts";
import { createTestDatabase } from "../support/database.ts";
import { composeTestService, SERVICE_TOKEN } from "../support/service.ts";

/**
 * Calls with deadlines shorter than the statement timeout run their queries in a call
 * transaction, which holds a pool connection until the call ends. Group commit, usage reads and
 * uncached standings take connections of their own: were every connection held by a call waiting
 * for one of those, nothing would move. Before the fix, most calls here waited for the acquire
 * timeout and failed with unavailable (and, before that timeout existed, hung for good).
 */
const POOL_SIZE = 2;
let pool: DatabasePool;
let listener: Listener;

beforeAll(async () => {
  const database = await createTestDatabase();
  pool = await createDatabasePool(database.url, {
    maxPoolSize: POOL_SIZE,
    connectTimeoutMs: 1500,
    preparedStatements: process.env.DATABASE_PREPARED_STATEMENTS !== "off",
  });
  const { served } = await composeTestService(pool, systemClock);
  listener = await listenAll(served, { host: "127.0.0.1", grpcPort: 0, httpPort: 0, maxInFlight: 1000, shutdownTimeoutMs: 1000 });
});

afterAll(async () => {
  await listener?.close();
  await pool?.end();
});

describe("a pool smaller than the calls in flight", () => {
  it.each(["connect", "grpc"] as const)("serves every increment, check and read with a deadline over %s", async (protocol) => {
    const baseUrl = protocol === "grpc" ? `http://127.0.0.1:${listener.grpcPort}` : `http://127.0.0.1:${listener.httpPort}`;
    const client = createEntitlementClient({ baseUrl, token: SERVICE_TOKEN, protocol });
    const users = Array.from({ length: 8 * POOL_SIZE }, (_, i) => `small-pool-${protocol}-${i}`);
    const calls = users.flatMap((userId) => [
      client.incrementUsage({ userId, metric: "jobs", amount: 1n }, { timeoutMs: 3000 }),
      client.checkQuota({ userId, metric: "jobs", amount: 1n }, { timeoutMs: 3000 }),
      client.getUsage({ userId }, { timeoutMs: 3000 }),
    ]);
    const outcomes = await Promise.allSettled(calls);
    const failures = outcomes.flatMap((outcome) => (outcome.status === "rejected" ? [String(outcome.reason)] : []));
    expect(failures).toEqual([]);
    const after = await Promise.all(users.map((userId) => client.checkQuota({ userId, metric: "jobs" })));
    expect(after.map((answer) => answer.quota?.used)).toEqual(users.map(() => 1n));
  });
});
