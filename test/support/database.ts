import { randomBytes } from "node:crypto";
import pg from "pg";
import type { DatabasePool, Interceptor } from "slonik";
import { afterAll, inject } from "vitest";
import { createDatabasePool } from "../../src/db/pool.ts";

export function databaseUrlFor(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withAdmin<T>(work: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: inject("adminDatabaseUrl") });
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.end();
  }
}

export type TestDatabase = {
  readonly url: string;
  readonly pool: DatabasePool;
};

/**
 * A fresh database for this test file, cloned from the migrated and seeded template, and dropped
 * after the file's tests.
 */
export async function createTestDatabase(
  options: { empty?: boolean; statementTimeoutMs?: number; interceptors?: readonly Interceptor[] } = {},
): Promise<TestDatabase> {
  const name = `test_${randomBytes(6).toString("hex")}`;
  await withAdmin(async (admin) => {
    // Cloning needs the template to have no other sessions: serialize clones across workers.
    await admin.query("select pg_advisory_lock(4242)");
    try {
      await admin.query(
        options.empty === true ? `create database ${name}` : `create database ${name} template ${inject("templateDatabase")}`,
      );
    } finally {
      await admin.query("select pg_advisory_unlock(4242)");
    }
  });
  const url = databaseUrlFor(inject("adminDatabaseUrl"), name);
  const pool = await createDatabasePool(url, {
    maxPoolSize: 20,
    statementTimeoutMs: options.statementTimeoutMs ?? 5000,
    interceptors: options.interceptors,
  });
  afterAll(async () => {
    await pool.end();
    await withAdmin((admin) => admin.query(`drop database if exists ${name} with (force)`));
  });
  return { url, pool };
}
