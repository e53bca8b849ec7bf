import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { systemClock } from "../../src/domain/clock.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createDatabasePool } from "../../src/db/pool.ts";
import { seedCatalog } from "../../src/db/seed.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { createEntitlementClient } from "../../src/client.ts";
import type { HealthMonitor } from "../../src/app/health-monitor.ts";
import { listenAll, type Listener } from "../../src/transport/listeners.ts";
import { startRestartablePostgres, terminateConnections, type RestartablePostgres } from "../support/faults.ts";
import { composeTestService, SERVICE_TOKEN } from "../support/service.ts";
import type { DatabasePool } from "slonik";

/**
 * A PostgreSQL of this test's own, so it can be killed and restarted under a stream of keyed
 * increments: calls fail fast with unavailable, the service recovers by itself, and a client
 * that retries with the same keys ends with every increment counted exactly once.
 */
const logger = createLogger("silent");
let postgres: RestartablePostgres;
let pool: DatabasePool;
let listener: Listener;
let client: Client<typeof EntitlementService>;
let health: HealthMonitor;

beforeAll(async () => {
  postgres = await startRestartablePostgres();
  await migrate(postgres.databaseUrl, logger);
  pool = await createDatabasePool(postgres.databaseUrl, { maxPoolSize: 8, statementTimeoutMs: 2000, connectTimeoutMs: 500 });
  await seedCatalog(pool, defaultCatalog);
  // As served: group commit on, and no standing cache, so every call reads through the pool.
  const composed = await composeTestService(pool, systemClock, { logger });
  health = composed.health;
  listener = await listenAll(composed.served, {
    host: "127.0.0.1",
    grpcPort: 0,
    httpPort: 0,
    maxInFlight: 1000,
    shutdownTimeoutMs: 1000,
  });
  client = createEntitlementClient({ baseUrl: `http://127.0.0.1:${listener.httpPort}`, token: SERVICE_TOKEN, protocol: "connect" });
}, 120_000);

afterAll(async () => {
  await listener?.close();
  await pool?.end();
  await postgres?.destroy();
});

const DEADLINE_MS = 3000;
const RETRYABLE = new Set([Code.Unavailable, Code.DeadlineExceeded]);

describe("PostgreSQL failing under load", () => {
  it("fails fast, recovers by itself, and counts every retried increment exactly once", async () => {
    const increments = Array.from({ length: 240 }, (_, i) => ({ key: `inc-${i}`, amount: BigInt((i % 5) + 1) }));
    const errors = new Map<string, number>();
    let slowest = 0;
    let faults = 0;

    const sendWithRetries = async ({ key, amount }: { key: string; amount: bigint }) => {
      for (let attempt = 0; attempt < 400; attempt++) {
        const started = performance.now();
        try {
          await client.incrementUsage({ userId: "stream", metric: "compute_minutes", amount, idempotencyKey: key }, { timeoutMs: DEADLINE_MS });
          slowest = Math.max(slowest, performance.now() - started);
          return;
        } catch (error) {
          slowest = Math.max(slowest, performance.now() - started);
          const code = ConnectError.from(error).code;
          errors.set(Code[code], (errors.get(Code[code]) ?? 0) + 1);
          if (!RETRYABLE.has(code)) throw error;
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      }
      throw new Error(`increment ${key} never succeeded`);
    };

    const queue = [...increments];
    const workers = Array.from({ length: 8 }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) await sendWithRetries(next);
    });
    const chaos = (async () => {
      for (let round = 0; round < 3; round++) {
        await new Promise((resolve) => setTimeout(resolve, 150));
        faults += (await terminateConnections(postgres.databaseUrl)) > 0 ? 1 : 0;
      }
      await postgres.stop();
      faults++;
      await new Promise((resolve) => setTimeout(resolve, 700));
      await postgres.start();
    })();
    await Promise.all([...workers, chaos]);

    process.stdout.write(`faults injected: ${faults}; errors seen: ${JSON.stringify(Object.fromEntries(errors))}; slowest call: ${slowest.toFixed(0)} ms\n`);
    expect(faults).toBeGreaterThanOrEqual(2);
    expect([...errors.keys()].every((code) => code === "Unavailable" || code === "DeadlineExceeded"), JSON.stringify([...errors])).toBe(true);
    expect(errors.get("Unavailable") ?? 0).toBeGreaterThan(0);
    expect(slowest).toBeLessThan(DEADLINE_MS + 1000);
    const usage = await client.checkQuota({ userId: "stream", metric: "compute_minutes" });
    expect(usage.quota?.used).toBe(increments.reduce((sum, increment) => sum + increment.amount, 0n));
  });

  it("reports NOT_SERVING while the database is unreachable, and SERVING once it is back", async () => {
    const ready = () => fetch(`http://127.0.0.1:${listener.httpPort}/readyz`).then((response) => response.status);
    await health.probe();
    expect(await ready()).toBe(200);
    await postgres.stop();
    try {
      await health.probe();
      expect(health.status).toBe("not_serving");
      expect(await ready()).toBe(503);
    } finally {
      await postgres.start();
    }
    await health.probe();
    expect(await ready()).toBe(200);
  });
});
