import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import type { UsageLevel } from "../domain/quota.ts";
import { timestampColumn } from "./columns.ts";
import { usageRowId, rowArrays, type UsageRowKey } from "./usage-counters.ts";

const levelRow = z.object({
  user_id: z.string(),
  metric_code: z.string(),
  period_start: z.number(),
  used: z.bigint(),
  reserved: z.bigint(),
  reserved_until: timestampColumn.nullable(),
});

/**
 * The rows of any users, each with what its held reservations hold at `at` and until when that
 * stands (summed again from the reservations when one of them has expired); rows that do not
 * exist are at 0. In the order asked.
 */
export async function findUsageLevels(db: CommonQueryMethods, rows: readonly UsageRowKey[], at: Date): Promise<UsageLevel[]> {
  const found = await db.any(sql.prepared("usage_find_levels", levelRow)`
    select c.user_id, c.metric_code, c.period_start, c.used, h.reserved, h.reserved_until
    from usage_counters c
    join unnest(${rowArrays(rows)}) as wanted (user_id, metric_code, period_start)
      on c.user_id = wanted.user_id and c.metric_code = wanted.metric_code and c.period_start = wanted.period_start
    cross join lateral (
      select c.reserved, c.reserved_until where c.reserved_until is null or c.reserved_until > ${sql.timestamp(at)}
      union all
      select x.reserved, x.reserved_until from row_reserved(c.user_id, c.metric_code, c.period_start, ${sql.timestamp(at)}) x
      where c.reserved_until <= ${sql.timestamp(at)}
    ) h
  `);
  const levels = new Map(
    found.map((row) => [
      usageRowId({ userId: row.user_id, metric: row.metric_code, periodStart: new Date(row.period_start) }),
      { used: row.used, reserved: row.reserved, reservedUntil: row.reserved_until, readAt: at },
    ]),
  );
  return rows.map((row) => levels.get(usageRowId(row)) ?? { used: 0n, reserved: 0n, reservedUntil: null, readAt: at });
}

/** One row's level (findUsageLevels). */
export async function findUsageLevel(db: CommonQueryMethods, row: UsageRowKey, at: Date): Promise<UsageLevel> {
  const [level] = await findUsageLevels(db, [row], at);
  return level!;
}
