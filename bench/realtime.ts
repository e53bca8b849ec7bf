/**
 * The change feed's targets (issue 19), in one run against service processes on a fresh database:
 * - local HasFeature: the typed client answering from memory, on this process's one core, for
 *   1000 followed users: calls/s and p99 (target >= 1,000,000/s, p99 < 20 µs);
 * - propagation: UpgradePlan committed through replica A to the event at watchers on replica B
 *   that follow 10,000 users (ten watches of 1000): p50/p99 (target p99 < 100 ms);
 * - 1,000 open watches on one replica: its RSS over idle (target < 100 MB), and GetPlan calls/s
 *   (typed client, 16 in flight) with and without them, alternated (target: unchanged within noise).
 * Run: npm run bench:realtime. BENCH_SECONDS sets each throughput measurement's length.
 */
import type { ChildProcess } from "node:child_process";
import { createEntitlementClient, type EntitlementClient } from "../clients/node/src/index.ts";
import { loadDefaultCatalog } from "../src/app/catalog-file.ts";
import { freePort } from "../src/db/embedded.ts";
import { migrate } from "../src/db/migrate.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { seedCatalog } from "../src/db/seed.ts";
import { createLogger } from "../src/platform/logger.ts";
import { benchDatabaseServer, freshDatabase, percentile, rssMb, seconds, serviceArgs, startProcess, table } from "./support.ts";

const TOKEN = "bench-service-token-0123456789";
const fmt = (n: number, digits = 2) => (n >= 100 ? n.toFixed(0) : n.toFixed(digits));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startReplica(databaseUrl: string, children: ChildProcess[]): Promise<{ grpcPort: number; pid: number }> {
  const [grpcPort, httpPort] = await Promise.all([freePort(), freePort()]);
  const child = await startProcess(
    serviceArgs,
    { DATABASE_URL: databaseUrl, SERVICE_TOKENS: TOKEN, GRPC_PORT: String(grpcPort), HTTP_PORT: String(httpPort), LOG_LEVEL: "warn", DATABASE_POOL_SIZE: "16" },
    /Entitlement service ready/,
    "stdout",
  );
  children.push(child);
  return { grpcPort, pid: child.pid! };
}

const clientOf = (grpcPort: number): EntitlementClient => createEntitlementClient({ baseUrl: `http://127.0.0.1:${grpcPort}`, token: TOKEN, timeoutMs: 30_000 });

/** Local HasFeature: calls answered from memory, timed one by one, for `seconds`. */
async function localHasFeature(grpcPort: number): Promise<(string | number)[]> {
  const client = createEntitlementClient({ baseUrl: `http://127.0.0.1:${grpcPort}`, token: TOKEN, local: { maxStalenessMs: 5000, maxUsers: 1000 } });
  const users = Array.from({ length: 1000 }, (_, index) => `local-${index}`);
  await client.local.follow(users, 30_000);
  const features = ["api_access", "sso", "webhooks", "audit_log"];
  let enabled = 0;
  const call = async (i: number) => {
    if ((await client.hasFeature({ userId: users[i % 1000]!, feature: features[i & 3]! })).enabled) enabled++;
  };
  // Throughput: calls awaited one after another, the clock read once per 1000.
  let calls = 0;
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    for (let i = 0; i < 1000; i++) await call(calls + i);
    calls += 1000;
  }
  const rate = calls / ((performance.now() - started) / 1000);
  // Latency: 200,000 calls timed one by one (the two clock reads are part of each).
  const latencies = new Float64Array(200_000);
  for (let i = 0; i < latencies.length; i++) {
    const begun = performance.now();
    await call(i);
    latencies[i] = performance.now() - begun;
  }
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  client.close();
  return ["local HasFeature (1000 users, one core)", `${fmt(rate / 1e6, 2)} M/s`, `${fmt(percentile(sorted, 0.5) * 1000)} µs`, `${fmt(percentile(sorted, 0.99) * 1000)} µs`, ">= 1 M/s, p99 < 20 µs", enabled > 0 ? "" : "(nothing enabled?)"];
}

/** UpgradePlan through `writerPort` to the event at ten watches (1000 users each) on `watcherPort`. */
async function propagation(writerPort: number, watcherPort: number): Promise<(string | number)[]> {
  const watcher = clientOf(watcherPort);
  const writer = clientOf(writerPort);
  const arrivals = new Map<string, number>();
  const abort = new AbortController();
  const watches = Array.from({ length: 10 }, async (_, group) => {
    const userIds = Array.from({ length: 1000 }, (_, index) => `prop-${group}-${index}`);
    for await (const message of watcher.watchEntitlements({ userIds }, { signal: abort.signal, timeoutMs: 0 })) {
      if (message.kind.case === "event") arrivals.set(`${message.kind.value.userId}/${message.kind.value.revision}`, performance.now());
    }
  });
  const opened = watches.map((watch) => watch.catch(() => undefined));
  await sleep(3000);
  const latencies: number[] = [];
  for (let i = 0; i < 200; i++) {
    const userId = `prop-${i % 10}-${i}`;
    const started = performance.now();
    const { revision } = await writer.upgradePlan({ userId, planCode: i % 2 === 0 ? "pro" : "enterprise" });
    const key = `${userId}/${revision}`;
    while (!arrivals.has(key) && performance.now() - started < 5000) await sleep(1);
    latencies.push((arrivals.get(key) ?? Number.NaN) - started);
    await sleep(10);
  }
  abort.abort();
  await Promise.all(opened);
  const sorted = latencies.filter((latency) => !Number.isNaN(latency)).sort((a, b) => a - b);
  const lost = latencies.length - sorted.length;
  return ["propagation A -> B (10,000 watched users)", `${latencies.length} changes`, `${fmt(percentile(sorted, 0.5))} ms`, `${fmt(percentile(sorted, 0.99))} ms`, "p99 < 100 ms", lost > 0 ? `(${lost} never arrived)` : ""];
}

/** GetPlan calls/s through the typed client, 16 in flight, for `seconds`. */
async function getPlanRate(client: EntitlementClient): Promise<number> {
  let calls = 0;
  let stop = false;
  const workers = Array.from({ length: 16 }, async (_, worker) => {
    while (!stop) {
      await client.getPlan({ userId: `reader-${worker}` });
      calls++;
    }
  });
  await sleep(500);
  const before = calls;
  await sleep(seconds * 1000);
  const rate = (calls - before) / seconds;
  stop = true;
  await Promise.all(workers);
  return rate;
}

/** Opens 1000 watches (two users each) on the replica at `grpcPort`; resolves once every snapshot is in. */
async function openThousand(grpcPort: number): Promise<{ close(): Promise<void> }> {
  const watcher = clientOf(grpcPort);
  const abort = new AbortController();
  let snapshots = 0;
  const streams = Array.from({ length: 1000 }, async (_, index) => {
    const userIds = [`watched-${index}-a`, `watched-${index}-b`];
    for await (const message of watcher.watchEntitlements({ userIds }, { signal: abort.signal, timeoutMs: 0 })) if (message.kind.case === "snapshot") snapshots++;
  }).map((stream) => stream.catch(() => undefined));
  while (snapshots < 2000) await sleep(20);
  return {
    close: async () => {
      abort.abort();
      await Promise.all(streams);
    },
  };
}

/** 1000 open watches on a replica that has served nothing else: its RSS over idle. */
async function watchMemory(replica: { grpcPort: number; pid: number }): Promise<(string | number)[]> {
  await sleep(2000);
  const idle = await rssMb(replica.pid);
  const watches = await openThousand(replica.grpcPort);
  await sleep(2000);
  const open = await rssMb(replica.pid);
  await watches.close();
  return ["1000 open watches: RSS over idle", `${fmt(open - idle)} MB`, "", "", "< 100 MB", `idle ${fmt(idle)} MB`];
}

/** GetPlan's rate on a replica with and without 1000 open watches, alternated three times; medians. */
async function readsBesideWatches(replica: { grpcPort: number }): Promise<(string | number)[]> {
  const reader = clientOf(replica.grpcPort);
  const rates: { without: number[]; with: number[] } = { without: [], with: [] };
  await getPlanRate(reader);
  for (let round = 0; round < 3; round++) {
    rates.without.push(await getPlanRate(reader));
    const watches = await openThousand(replica.grpcPort);
    rates.with.push(await getPlanRate(reader));
    await watches.close();
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const ratio = median(rates.with) / median(rates.without);
  return ["GetPlan calls/s without / with 1000 watches", `${fmt(median(rates.without))} / ${fmt(median(rates.with))}`, "", "", "unchanged within noise", `ratio ${ratio.toFixed(2)}`];
}

const database = await benchDatabaseServer();
const children: ChildProcess[] = [];
try {
  const databaseUrl = await freshDatabase(database.serverUrl, "entitlements_bench_realtime");
  await migrate(databaseUrl, createLogger("warn"));
  const pool = await createDatabasePool(databaseUrl, { maxPoolSize: 2 });
  await seedCatalog(pool, await loadDefaultCatalog());
  await pool.end();
  const a = await startReplica(databaseUrl, children);
  const b = await startReplica(databaseUrl, children);
  const rows: (string | number)[][] = [["measure", "value", "p50", "p99", "target", ""]];
  rows.push(await watchMemory(await startReplica(databaseUrl, children)));
  rows.push(await localHasFeature(b.grpcPort));
  rows.push(await propagation(a.grpcPort, b.grpcPort));
  rows.push(await readsBesideWatches(b));
  process.stdout.write(
    `\nReal time: two service processes on one database; the load (the typed client, gRPC) in this process, which shares the 2 cores.\n\n${table(rows)}\n`,
  );
} finally {
  for (const child of children) child.kill("SIGTERM");
  await database.stop();
}
