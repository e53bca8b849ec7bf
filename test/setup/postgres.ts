import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import pg from "pg";
import { startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createDatabasePool } from "../../src/db/pool.ts";
import { seedCatalog } from "../../src/db/seed.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { databaseUrlFor } from "../support/database.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** A PostgreSQL URL of a database on a server where tests may create databases. */
    adminDatabaseUrl: string;
    /** A migrated and seeded database that each test file copies. */
    templateDatabase: string;
    /**
     * TEST_PGBOUNCER_URL: a PgBouncer in transaction mode in front of that server, through which
     * test databases are then reached ("" when there is none).
     */
    poolerUrl: string;
  }
}

/**
 * Real PostgreSQL for the tests: DATABASE_URL when set (CI), else an embedded server in a
 * temporary folder. Migrations and the seed run once, into a template that every test file
 * clones into a fresh database of its own.
 */
export default async function setup(project: TestProject) {
  const logger = createLogger("warn");
  let stopEmbedded: (() => Promise<void>) | undefined;
  let adminDatabaseUrl = process.env.DATABASE_URL;
  if (adminDatabaseUrl === undefined || adminDatabaseUrl === "") {
    const directory = await mkdtemp(path.join(tmpdir(), "entitlements-test-"));
    const embedded = await startEmbeddedPostgres(path.join(directory, "postgres"), "test-password-0123456789", logger);
    adminDatabaseUrl = embedded.databaseUrl;
    stopEmbedded = async () => {
      await embedded.stop();
      await rm(directory, { recursive: true, force: true });
    };
  }
  const templateDatabase = `entitlements_template_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminDatabaseUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${templateDatabase}`);
  await admin.query(`create database ${templateDatabase}`);
  const templateUrl = databaseUrlFor(adminDatabaseUrl, templateDatabase);
  await migrate(templateUrl, logger);
  const pool = await createDatabasePool(templateUrl, { maxPoolSize: 1 });
  await seedCatalog(pool, defaultCatalog);
  await pool.end();

  project.provide("adminDatabaseUrl", adminDatabaseUrl);
  project.provide("templateDatabase", templateDatabase);
  project.provide("poolerUrl", process.env.TEST_PGBOUNCER_URL ?? "");

  return async () => {
    await admin.query(`drop database if exists ${templateDatabase} with (force)`);
    await admin.end();
    await stopEmbedded?.();
  };
}
