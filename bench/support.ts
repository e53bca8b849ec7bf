import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../src/db/embedded.ts";
import { createLogger } from "../src/logger.ts";

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
