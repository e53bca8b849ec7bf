import { readdir } from "node:fs/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { sql } from "slonik";
import { z } from "zod";
import { migrate } from "../../src/db/migrate.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { packagePath } from "../../src/platform/package-files.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase({ empty: true });
});

describe("migrate", () => {
  it("is safe when replicas start together, and idempotent", async () => {
    const logger = createLogger("silent");
    await Promise.all([migrate(database.sessionUrl, logger), migrate(database.sessionUrl, logger), migrate(database.sessionUrl, logger)]);
    await migrate(database.sessionUrl, logger);
    const applied = await database.pool.anyFirst(sql.type(z.object({ name: z.string() }))`select name from pgmigrations`);
    // Every migration in the folder, once each, in order.
    const files = (await readdir(packagePath("migrations"))).filter((file) => file.endsWith(".sql")).sort();
    expect(files.length).toBeGreaterThanOrEqual(4);
    expect(applied).toEqual(files.map((file) => file.replace(/\.sql$/, "")));
    expect(await database.pool.exists(sql.unsafe`select 1 from information_schema.tables where table_name = 'usage_counters'`)).toBe(true);
  });
});
