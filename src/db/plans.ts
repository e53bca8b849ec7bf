import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";

/** Adds a plan code, the row its versions hang from, or offers an archived one again. */
export async function ensurePlan(db: CommonQueryMethods, code: string): Promise<void> {
  await db.query(sql.unsafe`
    insert into plans (code) values (${code})
    on conflict (code) do update set archived_at = null where plans.archived_at is not null
  `);
}

/** Archives the offered plans other than `kept`: their subscribers keep them, nobody new gets them. */
export async function archivePlansOtherThan(db: CommonQueryMethods, kept: readonly string[], at: Date): Promise<void> {
  await db.query(sql.unsafe`
    update plans set archived_at = ${sql.timestamp(at)}
    where archived_at is null and code <> all(${sql.array(kept, "text")})
  `);
}

/** The plans no longer offered. */
export async function findArchivedPlans(db: CommonQueryMethods): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ code: z.string() }))`select code from plans where archived_at is not null order by code`);
}
