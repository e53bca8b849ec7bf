import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import type { Feature } from "../domain/catalog.ts";

/** The features the catalog lists now (not archived). */
export async function findAllFeatures(db: CommonQueryMethods): Promise<readonly Feature[]> {
  return db.any(sql.type(z.object({ code: z.string(), description: z.string() }))`
    select code, description from features where archived_at is null order by code
  `);
}

/** Inserts or updates a feature, listed again if it was archived; writes nothing when it is already as given. */
export async function upsertFeature(db: CommonQueryMethods, feature: Feature): Promise<void> {
  await db.query(sql.unsafe`
    insert into features (code, description) values (${feature.code}, ${feature.description})
    on conflict (code) do update
      set description = excluded.description, archived_at = null
      where (features.description, features.archived_at) is distinct from (excluded.description, null)
  `);
}

/** Archives the listed features other than `kept` (older plan versions may still name them). */
export async function archiveFeaturesOtherThan(db: CommonQueryMethods, kept: readonly string[], at: Date): Promise<void> {
  await db.query(sql.unsafe`
    update features set archived_at = ${sql.timestamp(at)}
    where archived_at is null and code <> all(${sql.array(kept, "text")})
  `);
}
