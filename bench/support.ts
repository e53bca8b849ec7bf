import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, toBinary, type DescMessage } from "@bufbuild/protobuf";
import pg from "pg";
import { startEmbeddedPostgres } from "../src/db/embedded.ts";
import { createLogger } from "../src/platform/logger.ts";

export const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
/**
 * The service's arguments as `npm start` runs it, its Node.js flags included (they are part of
 * how it performs): the start script without its leading `node`.
 */
export const serviceArgs: readonly string[] = (
  JSON.parse(await readFile(path.join(root, "package.json"), "utf8")) as { scripts: { start: string } }
).scripts.start
  .split(" ")
  .slice(1);
/** Length of each measurement. */
export const seconds = Number(process.env.BENCH_SECONDS ?? 4);

/**
 * One increment's SQL as pgbench and the minimal server run it, the shape of the service's: record
 * the account, then the conditional upsert of the user's counter. `user` is an SQL expression.
 */
export function incrementSql(user: string): string {
  return `with account as (insert into accounts (user_id, created_at) values (${user}, now()) on conflict (user_id) do nothing)
insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at) select ${user}, 'compute_minutes', date_trunc('month', now()), greatest(1::bigint, 0), now() where 1::bigint <= 9007199254740991 on conflict (user_id, metric_code, period_start) do update set used = greatest(c.used + 1::bigint, 0), updated_at = excluded.updated_at where 1::bigint <= 0 or c.used + 1::bigint <= 9007199254740991 returning c.used`;
}

/** A PostgreSQL server for a benchmark: DATABASE_URL's, or an embedded one in a temp folder. */
export async function benchDatabaseServer(): Promise<{ serverUrl: string; stop(): Promise<void> }> {
  const url = process.env.DATABASE_URL;
  if (url !== undefined && url !== "") return { serverUrl: url, stop: async () => {} };
  const directory = await mkdtemp(path.join(tmpdir(), "entitlements-bench-"));
  const embedded = await startEmbeddedPostgres(path.join(directory, "postgres"), "bench-password-0123456789", createLogger("warn"));
  return {
    serverUrl: embedded.databaseUrl,
    stop: async () => {
      await embedded.stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** A fresh, empty database on the server; returns its URL. */
export async function freshDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export type Latency = { readonly p50: number; readonly p99: number; readonly mean: number };

/** Runs `work` `runs` times after `warmup` runs; milliseconds per run. */
export async function measure(work: () => Promise<unknown>, runs = 50, warmup = 5): Promise<Latency> {
  for (let i = 0; i < warmup; i++) await work();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await work();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { p50: at(0.5), p99: at(0.99), mean: times.reduce((sum, t) => sum + t, 0) / times.length };
}

export function table(rows: readonly (readonly (string | number)[])[]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => String(row[column]).length)));
  return rows.map((row) => row.map((cell, column) => String(cell).padEnd(widths[column]!)).join("  ")).join("\n");
}

export async function ensureTool(binary: string, aptPackage: string): Promise<void> {
  const found = await run("sh", ["-c", `command -v ${binary}`]).then(() => true, () => false);
  if (found) return;
  if (process.getuid?.() !== 0) throw new Error(`${binary} is missing: apt-get install ${aptPackage}`);
  process.stderr.write(`installing ${aptPackage} for ${binary}\n`);
  await run("sh", ["-c", `apt-get install -y ${aptPackage} >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y ${aptPackage} >/dev/null)`]);
}
export type Result = {
  rps: number;
  p50: number;
  p99: number;
  failed: number;
  /** CPU time the server process spent per call, when its pid was given (NaN otherwise). */
  cpuUsPerCall: number;
};

/** CPU seconds (user + system) a process has used, from /proc. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

let logs = 0;
export function percentile(sorted: number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
/** h2load processes in parallel, one per body; their logs merged. Latencies in ms. */
export async function h2load(options: {
  url: string;
  bodies: readonly (string | undefined)[];
  inFlight: number;
  headers: readonly string[];
  http1?: boolean;
  directory: string;
  /** The server's pid: its CPU time per call is measured over the measurement (not the warm-up). */
  serverPid?: number;
}): Promise<Result> {
  const processes = options.bodies.length;
  const pid = options.serverPid;
  const cpuAtWarmedUp = pid === undefined ? undefined : new Promise<number>((resolve) => setTimeout(() => resolve(cpuSeconds(pid)), 1000));
  const perProcess = Math.max(1, Math.round(options.inFlight / processes));
  const runs = await Promise.all(
    options.bodies.map(async (body, index) => {
      // A new file per run: h2load appends to an existing log.
      const log = path.join(options.directory, `h2load-${(logs += 1)}-${index}.log`);
      const args = [
        "-D", String(seconds), "--warm-up-time", "1", "-t", "1",
        ...(options.http1 === true ? ["--h1", "-c", String(perProcess), "-m", "1"] : ["-c", "1", "-m", String(perProcess)]),
        "--log-file", log,
        ...options.headers.flatMap((header) => ["-H", header]),
        ...(body === undefined ? [] : ["-d", body]),
        options.url,
      ];
      const { stdout } = await run("h2load", args, { maxBuffer: 16 * 1024 * 1024 });
      const rps = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(stdout)?.[1] ?? 0);
      const failed = Number(/requests: .* (\d+) failed/.exec(stdout)?.[1] ?? 0);
      const latencies = (await readFile(log, "utf8"))
        .split("\n")
        .filter(Boolean)
        .map((line) => Number(line.split("\t")[2]) / 1000);
      return { rps, failed, latencies };
    }),
  );
  const cpuUsed = pid === undefined ? Number.NaN : (await cpuSeconds(pid)) - (await cpuAtWarmedUp!);
  const latencies = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const rps = runs.reduce((sum, r) => sum + r.rps, 0);
  return {
    rps,
    cpuUsPerCall: (cpuUsed * 1e6) / (rps * seconds),
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    failed: runs.reduce((sum, r) => sum + r.failed, 0),
  };
}
export function grpcBody(directory: string, name: string, schema: DescMessage, init: object): Promise<string> {
  const message = toBinary(schema, create(schema, init as never));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  Buffer.from(message).copy(frame, 5);
  const file = path.join(directory, `${name}.bin`);
  return writeFile(file, frame).then(() => file);
}
/** A process of its own; its stdout (the request log) goes to /dev/null, readiness is read on stderr or stdout. */
export async function startProcess(args: readonly string[], env: NodeJS.ProcessEnv, ready: RegExp, readyOn: "stdout" | "stderr"): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", readyOn === "stdout" ? "pipe" : "ignore", "pipe"],
  });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (ready.test(output)) resolve();
      if (output.length > 65536) output = output.slice(-4096);
    };
    child.stdout?.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}: ${output}`)));
  });
  child.stdout?.resume();
  child.stderr!.resume();
  return child;
}
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}
