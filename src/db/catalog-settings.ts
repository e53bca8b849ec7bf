import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";

/** The plan of users without a subscription. */
export async function findDefaultPlan(db: CommonQueryMethods): Promise<string> {
  return db.oneFirst(sql.type(z.object({ default_plan: z.string() }))`select default_plan from catalog_settings`);
}

/** Sets the plan of users without a subscription; writes nothing when it is already so. */
export async function setDefaultPlan(db: CommonQueryMethods, code: string): Promise<void> {
  await db.query(sql.unsafe`
    insert into catalog_settings (default_plan) values (${code})
    on conflict (singleton) do update set default_plan = excluded.default_plan
      where catalog_settings.default_plan <> excluded.default_plan
  `);
}
