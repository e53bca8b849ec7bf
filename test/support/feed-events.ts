import { sql, type DatabasePool } from "slonik";
import { z } from "zod";

/** The user's change feed events as "revision type", in revision order, read from the outbox. */
export async function feedEventsOf(pool: DatabasePool, userId: string): Promise<string[]> {
  const rows = await pool.any(sql.type(z.object({ revision: z.bigint(), type: z.string() }))`
    select revision, type from entitlement_events where user_id = ${userId} order by revision
  `);
  return rows.map((row) => `${row.revision} ${row.type}`);
}
