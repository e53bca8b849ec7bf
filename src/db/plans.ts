import { sql, type CommonQueryMethods } from "slonik";

/** Adds a plan code, the row its versions hang from; nothing when it is there already. */
export async function ensurePlan(db: CommonQueryMethods, code: string): Promise<void> {
  await db.query(sql.unsafe`insert into plans (code) values (${code}) on conflict (code) do nothing`);
}
