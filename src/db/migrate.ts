import { runner } from "node-pg-migrate";
import type { Logger } from "../platform/logger.ts";
import { packagePath } from "../platform/package-files.ts";

/**
 * Applies pending migrations. An advisory lock makes replicas that start together wait for each
 * other instead of racing; all pending migrations apply in one transaction. Returns their names.
 */
export async function migrate(databaseUrl: string, logger: Logger): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: packagePath("migrations"),
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
  const names = applied.map((migration) => migration.name);
  if (names.length > 0) logger.info({ migrations: names }, "applied migrations");
  return names;
}
