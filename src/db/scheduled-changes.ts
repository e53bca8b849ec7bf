import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
import type { ScheduledChange } from "../domain/subscriptions.ts";

/** A pending change as recorded: whose, and who scheduled it. */
export type ScheduledChangeRecord = ScheduledChange & { readonly userId: string; readonly createdBy: string };

const changeRow = z
  .object({ user_id: z.string(), plan_code: z.string(), effective_at: timestampColumn, created_by: z.string() })
  .transform(
    (row): ScheduledChangeRecord => ({ userId: row.user_id, planCode: row.plan_code, effectiveAt: row.effective_at, createdBy: row.created_by }),
  );

/** Sets the account's pending plan change, replacing the one it had. */
export async function upsertScheduledChange(
  db: CommonQueryMethods,
  change: ScheduledChange & { readonly userId: string; readonly createdBy: string; readonly createdAt: Date },
): Promise<void> {
  await db.query(sql.unsafe`
    insert into scheduled_plan_changes (user_id, plan_code, effective_at, created_by, created_at)
    values (${change.userId}, ${change.planCode}, ${sql.timestamp(change.effectiveAt)}, ${change.createdBy}, ${sql.timestamp(change.createdAt)})
    on conflict (user_id) do update
      set plan_code = excluded.plan_code, effective_at = excluded.effective_at,
          created_by = excluded.created_by, created_at = excluded.created_at
  `);
}

/** Removes the account's pending change; returns it, or null when there was none. */
export async function deleteScheduledChange(db: CommonQueryMethods, userId: string): Promise<ScheduledChangeRecord | null> {
  return db.maybeOne(sql.type(changeRow)`
    delete from scheduled_plan_changes where user_id = ${userId} returning user_id, plan_code, effective_at, created_by
  `);
}

/** The account's pending change, locked until the transaction ends (run it under the account's lock). */
export async function findScheduledChange(db: CommonQueryMethods, userId: string): Promise<ScheduledChangeRecord | null> {
  return db.maybeOne(sql.type(changeRow)`
    select user_id, plan_code, effective_at, created_by from scheduled_plan_changes where user_id = ${userId} for update
  `);
}

/** Accounts whose change came due by `at`, earliest first, at most `limit`. */
export async function findDueChanges(db: CommonQueryMethods, at: Date, limit: number): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ user_id: z.string() }))`
    select user_id from scheduled_plan_changes where effective_at <= ${sql.timestamp(at)}
    order by effective_at limit ${limit}
  `);
}

/** The change of the standing query (db/accounts.ts), whose user is `wanted.user_id`. */
export const pendingChange = sql.fragment`left join scheduled_plan_changes change on change.user_id = wanted.user_id`;
