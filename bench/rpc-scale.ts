/**
 * Latency against the size of the data: the same calls on a database of 1k accounts (10k counter
 * rows) and of 1M accounts (10M counter rows: two counters over five periods each), through the
 * service in its own process, 16 in flight from h2load, spread over 8 users across the key
 * space. The service caches nothing here (STANDING_CACHE_SIZE=0, USAGE_CACHE_TTL_MS=0): every
 * call reads PostgreSQL, as a cold or rarely seen user's does. BENCH_SCALE_ACCOUNTS changes the
 * large size. Run: npm run bench:scale
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { sql } from "slonik";
import { EntitlementService } from "../gen/entitlements/v1/entitlement_service_pb.js";
import { freePort } from "../src/db/embedded.ts";
import { migrate } from "../src/db/migrate.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { seedCatalog } from "../src/db/seed.ts";
import { loadDefaultCatalog } from "../src/app/catalog-file.ts";
import { createLogger } from "../src/platform/logger.ts";
import { benchDatabaseServer, ensureTool, freshDatabase, grpcBody, h2load, serviceArgs, startProcess, table } from "./support.ts";

const TOKEN = "bench-service-token-0123456789";
const SIZES = [1_000, Number(process.env.BENCH_SCALE_ACCOUNTS ?? 1_000_000)];
const IN_FLIGHT = 16;
const logger = createLogger("warn");

const userId = (i: number) => `u-${String(i).padStart(8, "0")}`;

async function seeded(serverUrl: string, accounts: number): Promise<{ url: string; seconds: number }> {
  const url = await freshDatabase(serverUrl, `entitlements_bench_scale_${accounts}`);
  await migrate(url, logger);
  const pool = await createDatabasePool(url, { maxPoolSize: 2, statementTimeoutMs: 600_000 });
  await seedCatalog(pool, await loadDefaultCatalog());
  const started = performance.now();
  await pool.query(sql.unsafe`
    insert into accounts (user_id, created_at)
    select 'u-' || lpad(i::text, 8, '0'), now() from generate_series(1, ${accounts}) as i
  `);
  // Five periods of two counters per account, the current one included (UTC, as the service counts).
  await pool.query(sql.unsafe`
    insert into usage_counters (user_id, metric_code, period_start, used, updated_at)
    select 'u-' || lpad(i::text, 8, '0'), m.metric,
      case when m.metric = 'jobs'
        then (date_trunc('month', now() at time zone 'UTC') - make_interval(months => k)) at time zone 'UTC'
        else (date_trunc('day', now() at time zone 'UTC') - make_interval(days => k)) at time zone 'UTC' end,
      i % 5, now()
    from generate_series(1, ${accounts}) as i
    cross join (values ('jobs'), ('api_calls')) as m (metric)
    cross join generate_series(0, 4) as k
  `);
  await pool.query(sql.unsafe`vacuum analyze`);
  await pool.end();
  return { url, seconds: (performance.now() - started) / 1000 };
}

await ensureTool("h2load", "nghttp2-client");
const directory = await mkdtemp(path.join(tmpdir(), "entitlements-bench-scale-"));
const database = await benchDatabaseServer();
const children: ChildProcess[] = [];
const rows: (string | number)[][] = [["accounts", "counter rows", "call", "calls/s", "p50 ms", "p99 ms"]];
try {
  for (const accounts of SIZES) {
    const { url, seconds } = await seeded(database.serverUrl, accounts);
    process.stderr.write(`seeded ${accounts} accounts in ${seconds.toFixed(0)} s\n`);
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const service = await startProcess(
      serviceArgs,
      {
        DATABASE_URL: url,
        SERVICE_TOKENS: TOKEN,
        GRPC_PORT: String(grpcPort),
        HTTP_PORT: String(httpPort),
        LOG_LEVEL: "info",
        STANDING_CACHE_SIZE: "0",
        USAGE_CACHE_TTL_MS: "0",
      },
      /Entitlement service ready/,
      "stderr",
    );
    children.push(service);
    const users = Array.from({ length: 8 }, (_, k) => userId(Math.max(1, Math.floor(((k + 0.5) * accounts) / 8))));
    const methods = EntitlementService.method;
    const calls = {
      GetPlan: (user: string, k: number) => grpcBody(directory, `scale-get-${accounts}-${k}`, methods.getPlan.input, { userId: user }),
      CheckQuota: (user: string, k: number) => grpcBody(directory, `scale-check-${accounts}-${k}`, methods.checkQuota.input, { userId: user, metric: "api_calls", amount: 1n }),
      IncrementUsage: (user: string, k: number) =>
        grpcBody(directory, `scale-inc-${accounts}-${k}`, methods.incrementUsage.input, { userId: user, metric: "compute_minutes", amount: 1n }),
    };
    for (const [name, body] of Object.entries(calls)) {
      const bodies = await Promise.all(users.map((user, k) => body(user, k)));
      const result = await h2load({
        url: `http://127.0.0.1:${grpcPort}/${EntitlementService.typeName}/${name}`,
        bodies,
        inFlight: IN_FLIGHT,
        headers: ["content-type: application/grpc", "te: trailers", `authorization: Bearer ${TOKEN}`],
        directory,
      });
      rows.push([accounts, accounts * 10, `${name} (gRPC, ${IN_FLIGHT} in flight)`, result.rps.toFixed(0), result.p50.toFixed(2), result.p99.toFixed(2)]);
    }
    service.kill("SIGTERM");
  }
  process.stdout.write(
    `Latency against data size (the service in its own process with its caches off, h2load one thread, 2 cores)\n\n${table(rows)}\n`,
  );
} finally {
  for (const child of children) child.kill("SIGTERM");
  await database.stop();
  await rm(directory, { recursive: true, force: true });
}
