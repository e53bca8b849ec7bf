/** The increments' limit for bench:rpc: pgbench running the service's upsert statement. */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { incrementSql, run, seconds, type Result } from "./support.ts";

async function pgbenchBinary(): Promise<string> {
  const { stdout } = await run("sh", ["-c", "command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -n 1"]);
  return stdout.trim().split("\n")[0]!;
}

/**
 * pgbench running the increment's upsert (prepared, one transaction each) with `clients` clients
 * over `users` users' counters: the limit of the IncrementUsage rows.
 */
export async function pgbench(databaseUrl: string, clients: number, users: number, directory: string): Promise<Result> {
  const script = path.join(directory, "increment.sql");
  await writeFile(script, `\\set u random(1, ${users})\n${incrementSql("'bench-inc-' || :u")};\n`);
  const url = new URL(databaseUrl);
  const { stdout } = await run(
    await pgbenchBinary(),
    ["-n", "-M", "prepared", "-c", String(clients), "-j", "1", "-T", String(seconds), "-f", script, "-r", url.toString()],
    { env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) } },
  );
  const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1] ?? 0);
  const average = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1] ?? 0);
  return { rps: tps, p50: average, p99: Number.NaN, failed: Number(/failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0), cpuUsPerCall: Number.NaN };
}
