import { parseArgs } from "node:util";
import type { DatabasePool } from "slonik";
import { catalogYaml, loadCatalogFile } from "./app/catalog-file.ts";
import { findCatalogDefinition, seedCatalog } from "./db/seed.ts";
import { catalogChanges } from "./domain/catalog-changes.ts";

/** Runs work against the configured database, migrated. */
export type WithDatabase = (work: (pool: DatabasePool) => Promise<void>) => Promise<void>;

/** A catalog command used wrongly: the message says how. */
export class CatalogUsageError extends Error {}

const write = (line: string) => process.stdout.write(`${line}\n`);

/**
 * `catalog validate FILE` (no database), `catalog diff FILE`, `catalog apply FILE [--dry-run]`
 * and `catalog export` (docs/catalog.md).
 */
export async function catalogCommand(args: readonly string[], withDatabase: WithDatabase): Promise<void> {
  const { values, positionals } = parseArgs({ args: [...args], allowPositionals: true, options: { "dry-run": { type: "boolean", default: false } } });
  const [action, file] = positionals;
  if (action === "export") {
    return withDatabase(async (pool) => {
      const current = await findCatalogDefinition(pool);
      if (current === undefined) throw new CatalogUsageError("the database holds no catalog yet (npm run cli -- seed, or catalog apply FILE)");
      process.stdout.write(catalogYaml(current));
    });
  }
  if ((action !== "validate" && action !== "diff" && action !== "apply") || file === undefined) {
    throw new CatalogUsageError("catalog needs validate, diff or apply and a file, or export");
  }
  const catalog = await loadCatalogFile(file);
  if (action === "validate") {
    write(`${file}: a valid catalog (${catalog.plans.length} plans, ${catalog.metrics.length} metrics, ${catalog.features.length} features)`);
    return;
  }
  await withDatabase(async (pool) => {
    const changes = catalogChanges(await findCatalogDefinition(pool), catalog);
    if (changes.length === 0) {
      write("no changes");
      return;
    }
    changes.forEach(write);
    if (action === "apply" && values["dry-run"] !== true) {
      await seedCatalog(pool, catalog);
      write(`applied ${changes.length} change${changes.length === 1 ? "" : "s"}`);
    }
  });
}
