/**
 * Mixed load with faults for a bounded time (SOAK_SECONDS, default 30; SOAK_CONCURRENCY, default
 * 32), against the real listeners on loopback and a PostgreSQL of its own that it kills
 * connections of and restarts. Prints requests, errors by code, increments acknowledged vs
 * counted, faults injected and latency percentiles. Run: npm run soak
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "slonik";
import { z } from "zod";
import { createEntitlementClient } from "../clients/node/src/index.ts";
import { composeService } from "../src/compose.ts";
import { loadConfig } from "../src/config.ts";
import { migrate } from "../src/db/migrate.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { seedCatalog } from "../src/db/seed.ts";
import { loadDefaultCatalog } from "../src/app/catalog-file.ts";
import { createLogger } from "../src/platform/logger.ts";
import { listenAll } from "../src/transport/listeners.ts";
import { startRestartablePostgres, terminateConnections } from "../test/support/faults.ts";
import { table } from "./support.ts";

const seconds = Number(process.env.SOAK_SECONDS ?? 30);
const concurrency = Number(process.env.SOAK_CONCURRENCY ?? 32);
const token = "soak-service-token-0123456789";
const logger = createLogger("silent");

const postgres = await startRestartablePostgres();
await migrate(postgres.databaseUrl, logger);
const pool = await createDatabasePool(postgres.databaseUrl, { maxPoolSize: 10, statementTimeoutMs: 2000, connectTimeoutMs: 500 });
await seedCatalog(pool, await loadDefaultCatalog());
const settings = loadConfig({ SERVICE_TOKENS: token, JWT_SECRET: "soak-jwt-secret-0123456789-0123456789", DATABASE_STATEMENT_TIMEOUT_MS: "2000" });
const { served } = await composeService(settings, pool, { logger });
const listener = await listenAll(
  served,
  { host: "127.0.0.1", grpcPort: 0, httpPort: 0, maxInFlight: 512, shutdownTimeoutMs: 2000 },
);
const client = createEntitlementClient({ baseUrl: `http://127.0.0.1:${listener.grpcPort}`, token, timeoutMs: 3000 });

const errors = new Map<string, number>();
const latencies: number[] = [];
const acknowledged = new Map<string, bigint>();
let requests = 0;
let faults = 0;
const endAt = Date.now() + seconds * 1000;
const USERS = 200;

async function call<T>(work: () => Promise<T>): Promise<T | undefined> {
  requests++;
  const started = performance.now();
  try {
    return await work();
  } catch (error) {
    const code = Code[ConnectError.from(error).code];
    errors.set(code, (errors.get(code) ?? 0) + 1);
    return undefined;
  } finally {
    latencies.push(performance.now() - started);
  }
}

/** An increment retried with its key until acknowledged (or the soak ends). */
async function keyedIncrement(userId: string, key: string, amount: bigint): Promise<void> {
  while (Date.now() < endAt + 10_000) {
    const response = await call(() =>
      client.incrementUsage({ userId, metric: "compute_minutes", amount, idempotencyKey: key }, { timeoutMs: 3000 }),
    );
    if (response !== undefined) {
      acknowledged.set(userId, (acknowledged.get(userId) ?? 0n) + amount);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function worker(index: number): Promise<void> {
  for (let i = 0; Date.now() < endAt; i++) {
    const userId = `soak-${(index * 7919 + i) % USERS}`;
    switch (i % 6) {
      case 0:
        await call(() => client.getPlan({ userId }, { timeoutMs: 3000 }));
        break;
      case 1:
        await call(() => client.hasFeature({ userId, feature: "priority_support" }, { timeoutMs: 3000 }));
        break;
      case 2:
        await call(() => client.checkQuota({ userId, metric: "jobs", amount: 1n }, { timeoutMs: 3000 }));
        break;
      case 3:
        await call(() => client.incrementUsage({ userId, metric: "jobs", amount: 1n }, { timeoutMs: 3000 }));
        break;
      case 4:
        await keyedIncrement(userId, `w${index}-${i}`, BigInt((i % 4) + 1));
        break;
      default:
        if (i % 60 === 5) await call(() => client.upgradePlan({ userId, planCode: i % 120 === 5 ? "pro" : "free" }, { timeoutMs: 3000 }));
    }
  }
}

async function chaos(): Promise<void> {
  let round = 0;
  while (Date.now() < endAt - 2000) {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    if (round++ % 3 === 2) {
      await postgres.stop();
      await new Promise((resolve) => setTimeout(resolve, 800));
      await postgres.start();
    } else {
      await terminateConnections(postgres.databaseUrl);
    }
    faults++;
  }
}

const started = performance.now();
await Promise.all([...Array.from({ length: concurrency }, (_, i) => worker(i)), chaos()]);
const elapsed = (performance.now() - started) / 1000;

const counted = new Map(
  (
    await pool.any(sql.type(z.object({ user_id: z.string(), used: z.bigint() }))`
      select user_id, used from usage_counters where metric_code = 'compute_minutes'
    `)
  ).map((row) => [row.user_id, row.used]),
);
const totalAcknowledged = [...acknowledged.values()].reduce((sum, n) => sum + n, 0n);
const totalCounted = [...counted.values()].reduce((sum, n) => sum + n, 0n);
const mismatched = [...new Set([...acknowledged.keys(), ...counted.keys()])].filter(
  (user) => (acknowledged.get(user) ?? 0n) !== (counted.get(user) ?? 0n),
).length;
latencies.sort((a, b) => a - b);
const percentile = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;

await listener.close();
await pool.end();
await postgres.destroy();

process.stdout.write(
  `Soak: ${seconds} s, ${concurrency} callers over gRPC, ${USERS} users, service and load generator in one process ` +
    `(2 cores), PostgreSQL of its own\n\n` +
    table([
      ["figure", "value"],
      ["requests", `${requests} (${Math.round(requests / elapsed)}/s)`],
      ["errors by code", [...errors].map(([code, n]) => `${code} ${n}`).join(", ") || "none"],
      ["keyed increments: units acknowledged", String(totalAcknowledged)],
      ["keyed increments: units counted", String(totalCounted)],
      ["users whose count differs", String(mismatched)],
      ["faults injected", `${faults} (connections killed, PostgreSQL restarted)`],
      ["latency p50 / p99 / max (ms)", `${percentile(0.5).toFixed(1)} / ${percentile(0.99).toFixed(1)} / ${percentile(1).toFixed(1)}`],
    ]) +
    "\n",
);
process.exit(mismatched === 0 ? 0 : 1);
