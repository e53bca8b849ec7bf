/**
 * Memory per cached account: the service (its own process, as `npm start` runs it) answers
 * GetPlan for N distinct users, and its RSS is read after each step (the cache holds up to
 * STANDING_CACHE_SIZE, 100k by default, users). Then heap snapshots (node
 * --heapsnapshot-signal, each taken after a full GC) before and after BENCH_SNAPSHOT_USERS more
 * users tell what a cached user holds, by V8 object kind. Run: npm run bench:memory
 * BENCH_USERS (default "50000,100000,150000,200000") sets the steps; BENCH_REST_SECONDS (default
 * 20) how long the service rests before the last row.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createEntitlementClient, type EntitlementClient } from "../clients/node/src/index.ts";
import { freePort } from "../src/db/embedded.ts";
import { benchDatabaseServer, freshDatabase, rssMb, serviceArgs, startProcess, table } from "./support.ts";

const STEPS = (process.env.BENCH_USERS ?? "50000,100000,150000,200000").split(",").map(Number);
const SNAPSHOT_USERS = Number(process.env.BENCH_SNAPSHOT_USERS ?? 20_000);
const IN_FLIGHT = 64;
/** How long the last row waits with no calls: V8 gives back heap it no longer needs once the process rests. */
const REST_SECONDS = Number(process.env.BENCH_REST_SECONDS ?? 20);
const TOKEN = "bench-service-token-0123456789";

/** GetPlan for users `from` to `to - 1`, IN_FLIGHT at a time. */
async function askUsers(client: EntitlementClient, from: number, to: number): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < to) {
        const user = next++;
        await client.getPlan({ userId: `memory-user-${user}` });
      }
    }),
  );
}

type Snapshot = { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };

/** Bytes by kind ("object Entry", "string", ...) of a heap snapshot. */
function bytesByKind(snapshot: Snapshot): Map<string, number> {
  const { meta } = snapshot.snapshot;
  const fields = meta.node_fields;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((field) => fields.indexOf(field));
  const types = meta.node_types[0];
  const kinds = new Map<string, number>();
  for (let index = 0; index < snapshot.nodes.length; index += width) {
    const type = types[snapshot.nodes[index + typeAt!]!]!;
    // Objects by constructor; strings, code, arrays and the rest by their type alone.
    const kind = type === "object" || type === "closure" ? `${type} ${snapshot.strings[snapshot.nodes[index + nameAt!]!]}` : type;
    kinds.set(kind, (kinds.get(kind) ?? 0) + snapshot.nodes[index + sizeAt!]!);
  }
  return kinds;
}

/** The V8 heap's used and committed MB, and memory outside it (buffers), from the service's /metrics. */
async function heapMb(httpPort: number): Promise<{ used: number; total: number; external: number }> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)`, "m").exec(text)?.[1] ?? Number.NaN) / 1024 / 1024;
  return { used: value("nodejs_heap_size_used_bytes"), total: value("nodejs_heap_size_total_bytes"), external: value("nodejs_external_memory_bytes") };
}

/** One row of the RSS table: users, RSS, the heap's parts, and RSS per user since `idle`. */
async function memoryRow(pid: number, httpPort: number, users: number, idle: number | undefined): Promise<{ rss: number; row: (string | number)[] }> {
  const [rss, heap] = await Promise.all([rssMb(pid), heapMb(httpPort)]);
  const perUser = idle === undefined ? "-" : `${(((rss - idle) * 1024 * 1024) / (users - 1000)).toFixed(0)} B`;
  return { rss, row: [users, rss.toFixed(0), heap.used.toFixed(0), heap.total.toFixed(0), heap.external.toFixed(0), perUser] };
}

/** Signals the service to write a heap snapshot and reads it once written. */
async function heapSnapshot(service: ChildProcess, directory: string): Promise<Map<string, number>> {
  const before = new Set(await readdir(directory));
  service.kill("SIGUSR2");
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const written = (await readdir(directory)).find((file) => file.endsWith(".heapsnapshot") && !before.has(file));
    if (written === undefined) continue;
    // Parsed once it is whole: the writer can pause longer than a poll, so a file that stopped
    // growing may still be cut short.
    const file = path.join(directory, written);
    for (let attempt = 1; ; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      let snapshot: Snapshot;
      try {
        snapshot = JSON.parse(await readFile(file, "utf8")) as Snapshot;
      } catch (error) {
        if (attempt === 240) throw new Error(`the heap snapshot ${file} is still not whole after two minutes`, { cause: error });
        continue;
      }
      await rm(file);
      return bytesByKind(snapshot);
    }
  }
}

const directory = await mkdtemp(path.join(tmpdir(), "entitlements-bench-memory-"));
const database = await benchDatabaseServer();
let service: ChildProcess | undefined;
try {
  const databaseUrl = await freshDatabase(database.serverUrl, "entitlements_bench_memory");
  const [grpcPort, httpPort] = await Promise.all([freePort(), freePort()]);
  service = await startProcess(
    [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${directory}`, ...serviceArgs],
    { DATABASE_URL: databaseUrl, SERVICE_TOKENS: TOKEN, GRPC_PORT: String(grpcPort), HTTP_PORT: String(httpPort), LOG_LEVEL: "warn" },
    /Entitlement service ready/,
    "stderr",
  );
  const client = createEntitlementClient({ baseUrl: `http://127.0.0.1:${grpcPort}`, token: TOKEN, timeoutMs: 30_000 });
  await askUsers(client, 0, 1000);
  const rows: (string | number)[][] = [["distinct users", "RSS MB", "heap used MB", "heap committed MB", "external MB", "RSS per user since idle"]];
  const idle = await memoryRow(service.pid!, httpPort, 1000, undefined);
  rows.push(idle.row);
  let asked = 1000;
  for (const step of STEPS) {
    await askUsers(client, asked, step);
    asked = step;
    rows.push((await memoryRow(service.pid!, httpPort, step, idle.rss)).row);
  }
  await new Promise((resolve) => setTimeout(resolve, REST_SECONDS * 1000));
  const rested = await memoryRow(service.pid!, httpPort, asked, idle.rss);
  rows.push([`${asked}, then ${REST_SECONDS} s at rest`, ...rested.row.slice(1)]);

  // What one cached user holds: the difference between two snapshots, SNAPSHOT_USERS users apart,
  // taken while the cache is below its bound (a fresh service).
  service.kill("SIGTERM");
  await new Promise((resolve) => service!.once("exit", resolve));
  service = await startProcess(
    [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${directory}`, ...serviceArgs],
    { DATABASE_URL: databaseUrl, SERVICE_TOKENS: TOKEN, GRPC_PORT: String(grpcPort), HTTP_PORT: String(httpPort), LOG_LEVEL: "warn" },
    /Entitlement service ready/,
    "stderr",
  );
  await askUsers(client, 0, 1000);
  const before = await heapSnapshot(service, directory);
  await askUsers(client, 1000, 1000 + SNAPSHOT_USERS);
  const after = await heapSnapshot(service, directory);
  const perUser = [...after]
    .map(([kind, bytes]) => [kind, (bytes - (before.get(kind) ?? 0)) / SNAPSHOT_USERS] as const)
    .filter(([, bytes]) => Math.abs(bytes) >= 8)
    .sort((x, y) => y[1] - x[1]);
  const total = perUser.reduce((sum, [, bytes]) => sum + bytes, 0);
  const heapRows: (string | number)[][] = [["kind (V8 type, constructor)", "bytes per user"], ...perUser.map(([kind, bytes]) => [kind, bytes.toFixed(0)]), ["all", total.toFixed(0)]];
  process.stdout.write(
    `Memory: one service process (${[process.env.NODE_OPTIONS ?? "", ...serviceArgs].join(" ").trim()}, default cache sizes), GetPlan for distinct users, ${IN_FLIGHT} in flight over gRPC.\n\n` +
      `${table(rows)}\n\nHeap per cached user (snapshots ${SNAPSHOT_USERS} users apart, each after a full GC):\n\n${table(heapRows)}\n`,
  );
} finally {
  service?.kill("SIGTERM");
  await database.stop();
  await rm(directory, { recursive: true, force: true });
}
