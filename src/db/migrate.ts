import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";
import type { Logger } from "../logger.ts";

/** migrations/ at the package root, whether this runs from src/ or from the built dist/src/. */
function migrationsDir(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "package.json")) && existsSync(path.join(dir, "migrations"))) {
      return path.join(dir, "migrations");
    }
    if (path.dirname(dir) === dir) throw new Error("the migrations folder was not found");
  }
}

/**
 * Applies pending migrations. An advisory lock makes replicas that start together wait for each
 * other instead of racing; all pending migrations apply in one transaction.
 */
export async function migrate(databaseUrl: string, logger: Logger): Promise<void> {
  const applied = await runner({
    databaseUrl,
    dir: migrationsDir(),
    direction: "up",
    migrationsTable: "pgmigrations",
    advisoryLockMode: "wait",
    singleTransaction: true,
    checkOrder: true,
    logger: {
      debug: (message: string) => logger.debug(message),
      info: (message: string) => logger.debug(message),
      warn: (message: string) => logger.warn(message),
      error: (message: string) => logger.error(message),
    },
  });
  if (applied.length > 0) {
    logger.info({ migrations: applied.map((migration) => migration.name) }, "applied migrations");
  }
}
