import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { NO_HOLDS, type Hold, type UsageLevel } from "../domain/quota.ts";
import { usageRowId, rowArrays, type UsageRowKey } from "./usage-counters.ts";

/** Each hold as [amount, expires_at in ms]; null when the row holds none at `at`. */
const holdsColumn = z
  .array(z.tuple([z.string(), z.number()]))
  .nullable()
  .transform((holds): readonly Hold[] => (holds === null ? NO_HOLDS : holds.map(([amount, expiresAt]) => ({ amount: BigInt(amount), expiresAt: new Date(expiresAt) }))));

const levelRow = z.object({ user_id: z.string(), metric_code: z.string(), period_start: z.number(), used: z.bigint(), holds: holdsColumn });

/**
 * The rows of any users, each with the holds of reservations on it that have not expired at
 * `at` (later answers weigh each hold at its own expiry); rows that do not exist are at 0 with
 * none. In the order asked.
 */
export async function findUsageLevels(db: CommonQueryMethods, rows: readonly UsageRowKey[], at: Date): Promise<UsageLevel[]> {
  const found = await db.any(sql.prepared("usage_find_levels", levelRow)`
    select c.user_id, c.metric_code, c.period_start, c.used,
      case when c.held_until > ${sql.timestamp(at)} then (
        select json_agg(json_build_array(h.amount::text, (extract(epoch from h.expires_at) * 1000)::float8))
        from reservation_holds h
        where h.user_id = c.user_id and h.metric_code = c.metric_code and h.period_start = c.period_start
          and h.expires_at > ${sql.timestamp(at)}
      ) end as holds
    from usage_counters c
    join unnest(${rowArrays(rows)}) as wanted (user_id, metric_code, period_start)
      on c.user_id = wanted.user_id and c.metric_code = wanted.metric_code and c.period_start = wanted.period_start
  `);
  const levels = new Map(
    found.map((row) => [
      usageRowId({ userId: row.user_id, metric: row.metric_code, periodStart: new Date(row.period_start) }),
      { used: row.used, holds: row.holds },
    ]),
  );
  return rows.map((row) => levels.get(usageRowId(row)) ?? ZERO);
}

/** One row's level (findUsageLevels). */
export async function findUsageLevel(db: CommonQueryMethods, row: UsageRowKey, at: Date): Promise<UsageLevel> {
  const [level] = await findUsageLevels(db, [row], at);
  return level!;
}

const ZERO: UsageLevel = Object.freeze({ used: 0n, holds: NO_HOLDS });
