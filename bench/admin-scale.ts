/**
 * Admin queries at scale: seeds accounts (1M by default; BENCH_ACCOUNTS to change), with
 * subscriptions, suspensions, emails and two counter rows each, then times ListAccounts and
 * GetPlatformStats against a small database seeded the same way. Run: npm run bench:admin
 */
import { sql } from "slonik";
import type { Administration } from "../src/app/administration.ts";
import { composeService } from "../src/compose.ts";
import { loadConfig } from "../src/config.ts";
import { migrate } from "../src/db/migrate.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { seedCatalog } from "../src/db/seed.ts";
import { loadDefaultCatalog } from "../src/app/catalog-file.ts";
import { systemClock } from "../src/domain/clock.ts";
import { usageRowStart } from "../src/domain/periods.ts";
import { createLogger } from "../src/platform/logger.ts";
import { benchDatabaseServer, freshDatabase, measure, table, type Latency } from "./support.ts";

const logger = createLogger("warn");

async function seededAdministration(serverUrl: string, name: string, accounts: number) {
  const url = await freshDatabase(serverUrl, name);
  await migrate(url, logger);
  // Seeding a million accounts can take longer than the service's statement timeout.
  const pool = await createDatabasePool(url, { maxPoolSize: 4, statementTimeoutMs: 600_000 });
  await seedCatalog(pool, await loadDefaultCatalog());
  const now = systemClock.now();
  const started = performance.now();
  await pool.query(sql.unsafe`
    insert into accounts (user_id, created_at, email, status, suspended_reason)
    select 'user-' || lpad(i::text, 8, '0'),
           ${sql.timestamp(now)} - (i % 1000) * interval '1 hour',
           case when i % 3 = 0 then 'person' || i || '@example.com' end,
           case when i % 100 = 0 then 'suspended' else 'active' end,
           case when i % 100 = 0 then 'benchmark' end
    from generate_series(1, ${accounts}) as i
  `);
  await pool.query(sql.unsafe`
    insert into subscriptions (user_id, plan_code, started_at)
    select 'user-' || lpad(i::text, 8, '0'), case when i % 50 = 0 then 'enterprise' else 'pro' end, ${sql.timestamp(now)}
    from generate_series(1, ${accounts}) as i where i % 10 = 0
  `);
  for (const metric of ["jobs", "api_calls"] as const) {
    const periodStart = usageRowStart(metric === "jobs" ? "month" : "day", now);
    await pool.query(sql.unsafe`
      insert into usage_counters (user_id, metric_code, period_start, used, updated_at)
      select 'user-' || lpad(i::text, 8, '0'), ${metric}, ${sql.timestamp(periodStart)}, i % 10, ${sql.timestamp(now)}
      from generate_series(1, ${accounts}) as i
    `);
  }
  await pool.query(sql.unsafe`analyze`);
  const seedSeconds = (performance.now() - started) / 1000;
  const { administration } = await composeService(loadConfig({}), pool, { logger });
  return { pool, administration, seedSeconds };
}

async function timings(administration: Administration): Promise<[string, Latency][]> {
  const list = (filter: Partial<Parameters<Administration["listAccounts"]>[0]>) =>
    administration.listAccounts({ query: "", planCode: undefined, status: undefined, pageSize: 50, pageToken: "", ...filter });
  let deepToken = "";
  for (let page = 0; page < 20; page++) deepToken = (await list({ pageToken: deepToken })).nextPageToken;
  return [
    ["ListAccounts, first page of 50", await measure(() => list({}))],
    ["ListAccounts, page 21 (keyset token)", await measure(() => list({ pageToken: deepToken }))],
    ["ListAccounts, user id prefix", await measure(() => list({ query: "user-0000" }))],
    ["ListAccounts, email prefix", await measure(() => list({ query: "person99" }))],
    ["ListAccounts, plan = enterprise", await measure(() => list({ planCode: "enterprise" }))],
    ["ListAccounts, status = suspended", await measure(() => list({ status: "suspended" }))],
    ["GetPlatformStats", await measure(() => administration.stats(), 10, 2)],
  ];
}

const large = Number(process.env.BENCH_ACCOUNTS ?? 1_000_000);
const small = 1_000;
const server = await benchDatabaseServer();
try {
  const smallDb = await seededAdministration(server.serverUrl, "entitlements_bench_small", small);
  const smallTimes = await timings(smallDb.administration);
  await smallDb.pool.end();
  const largeDb = await seededAdministration(server.serverUrl, "entitlements_bench_large", large);
  const largeTimes = await timings(largeDb.administration);
  await largeDb.pool.end();
  const ms = (value: number) => value.toFixed(2);
  process.stdout.write(
    `Admin queries, ${small.toLocaleString("en")} vs ${large.toLocaleString("en")} accounts ` +
      `(seeded in ${largeDb.seedSeconds.toFixed(1)} s; latency in ms, one caller, in-process, no network)\n\n`,
  );
  process.stdout.write(
    table([
      ["query", `p50 @${small}`, `p99 @${small}`, `p50 @${large}`, `p99 @${large}`],
      ...largeTimes.map(([name, latency], index) => {
        const [, smallLatency] = smallTimes[index]!;
        return [name, ms(smallLatency.p50), ms(smallLatency.p99), ms(latency.p50), ms(latency.p99)];
      }),
    ]) + "\n",
  );
} finally {
  await server.stop();
}
