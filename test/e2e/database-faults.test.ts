import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { systemClock } from "../../src/domain/clock.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createDatabasePool } from "../../src/db/pool.ts";
import { seedCatalog } from "../../src/db/seed.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { createEntitlementClient } from "../../clients/node/src/index.ts";
import type { HealthMonitor } from "../../src/app/health-monitor.ts";
import { listenAll, type Listener } from "../../src/transport/listeners.ts";
import { startRestartablePostgres, terminateConnections, type RestartablePostgres } from "../support/faults.ts";
import { composeTestService, SERVICE_TOKEN } from "../support/service.ts";
import type { DatabasePool } from "slonik";

/**
 * A PostgreSQL of this test's own, so it can be killed and restarted under a stream of keyed
 * increments, consumptions and refunds: calls fail fast with unavailable, the service recovers by
 * itself, and a client that retries with the same keys ends with each counted exactly once.
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
  it("fails fast, recovers by itself, and counts every retried increment, consumption, reservation and refund exactly once", async () => {
    // Increments of compute_minutes, all-or-nothing consumptions of it and of api_calls (made
    // unlimited for the user), reservations of compute_minutes committed at half, and refunds of
    // api_calls out of a first 1000.
    const userId = "stream";
    await client.setQuotaOverride({ userId, metric: "api_calls", reason: "fault test" });
    await client.consumeUsage({ userId, items: [{ metric: "api_calls", amount: 1000n }] });
    type Call = { key: string; kind: "increment" | "consume" | "reserve" | "refund"; amount: bigint };
    const calls: Call[] = Array.from({ length: 240 }, (_, i) => ({
      key: `call-${i}`,
      kind: i % 7 === 0 ? "refund" : i % 3 === 0 ? "consume" : i % 4 === 1 ? "reserve" : "increment",
      amount: BigInt((i % 5) + 1),
    }));
    const send = async ({ key, kind, amount }: Call) => {
      const options = { timeoutMs: DEADLINE_MS };
      if (kind === "reserve") {
        // A retry after any failure starts again: the key answers the same reservation, and a
        // repeated commit answers the first.
        const { reservation } = await client.reserveUsage({ userId, items: [{ metric: "compute_minutes", amount: 2n * amount }], ttlSeconds: 3600, idempotencyKey: key }, options);
        return client.commitReservation({ userId, reservationId: reservation!.id, actual: [{ metric: "compute_minutes", amount }] }, options);
      }
      if (kind === "increment") return client.incrementUsage({ userId, metric: "compute_minutes", amount, idempotencyKey: key }, options);
      if (kind === "refund") return client.refundUsage({ userId, metric: "api_calls", amount, idempotencyKey: key, reason: "failed job" }, options);
      const items = [{ metric: "compute_minutes", amount }, { metric: "api_calls", amount: 2n * amount }];
      return client.consumeUsage({ userId, items, idempotencyKey: key }, options);
    };
    const errors = new Map<string, number>();
    let slowest = 0;
    let faults = 0;

    const sendWithRetries = async (call: Call) => {
      const { key } = call;
      for (let attempt = 0; attempt < 400; attempt++) {
        const started = performance.now();
        try {
          await send(call);
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
      throw new Error(`call ${key} never succeeded`);
    };

    const queue = [...calls];
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
    const total = (kinds: Call["kind"][], times = 1n) => calls.filter((call) => kinds.includes(call.kind)).reduce((sum, call) => sum + times * call.amount, 0n);
    const { quotas } = await client.getUsage({ userId });
    const used = Object.fromEntries(quotas.map((quota) => [quota.metric, quota.used]));
    expect(total(["reserve"])).toBeGreaterThan(0n);
    expect(used.compute_minutes).toBe(total(["increment", "consume", "reserve"]));
    expect(quotas.find((quota) => quota.metric === "compute_minutes")?.reserved).toBe(0n);
    expect(used.api_calls).toBe(1000n + total(["consume"], 2n) - total(["refund"]));
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
