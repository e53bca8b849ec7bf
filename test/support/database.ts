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
  /** What the service's pool connects to: PostgreSQL, or the PgBouncer in front of it. */
  readonly url: string;
  /** PostgreSQL itself, for what needs a session (migrations, LISTEN). */
  readonly sessionUrl: string;
  readonly pool: DatabasePool;
  /** The environment a spawned service reaches this database with. */
  readonly env: Readonly<Record<string, string>>;
};

/** Named prepared statements, unless the run says off (PgBouncer 1.18 in transaction mode). */
const preparedStatements = process.env.DATABASE_PREPARED_STATEMENTS !== "off";

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
  const sessionUrl = databaseUrlFor(inject("adminDatabaseUrl"), name);
  const poolerUrl = inject("poolerUrl");
  if (poolerUrl !== "") {
    // Behind a pooler the timeouts are the database's settings, as docs/scaling.md has operators set them.
    const statementTimeoutMs = Math.trunc(options.statementTimeoutMs ?? 5000);
    await withAdmin(async (admin) => {
      await admin.query(`alter database ${name} set statement_timeout = ${statementTimeoutMs}`);
      await admin.query(`alter database ${name} set idle_in_transaction_session_timeout = 10000`);
    });
  }
  const url = poolerUrl === "" ? sessionUrl : databaseUrlFor(poolerUrl, name);
  const pool = await createDatabasePool(url, {
    maxPoolSize: 20,
    statementTimeoutMs: options.statementTimeoutMs ?? 5000,
    interceptors: options.interceptors,
    preparedStatements,
    sessionSettings: url === sessionUrl,
  });
  afterAll(async () => {
    await pool.end();
    await withAdmin((admin) => admin.query(`drop database if exists ${name} with (force)`));
  });
  const env = { DATABASE_URL: url, DATABASE_SESSION_URL: sessionUrl, DATABASE_PREPARED_STATEMENTS: preparedStatements ? "on" : "off" };
  return { url, sessionUrl, pool, env };
}
