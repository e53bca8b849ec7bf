import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import type { UsageRowKey } from "./usage-counters.ts";

/**
 * A counter row's count and the highest threshold it has announced, locked until the
 * transaction ends; null when the row is gone (reset).
 */
export async function lockAlertState(tx: CommonQueryMethods, row: UsageRowKey): Promise<{ readonly used: bigint; readonly alertedPercent: number } | null> {
  const state = await tx.maybeOne(sql.type(z.object({ used: z.bigint(), alerted_percent: z.number() }))`
    select used, alerted_percent from usage_counters
    where user_id = ${row.userId} and metric_code = ${row.metric} and period_start = ${sql.timestamp(row.periodStart)}
    for update
  `);
  return state === null ? null : { used: state.used, alertedPercent: state.alerted_percent };
}

/** Records that the row has announced its thresholds up to `percent`. */
export async function markAlerted(tx: CommonQueryMethods, row: UsageRowKey, percent: number): Promise<void> {
  await tx.query(sql.unsafe`
    update usage_counters set alerted_percent = ${percent}
    where user_id = ${row.userId} and metric_code = ${row.metric} and period_start = ${sql.timestamp(row.periodStart)}
  `);
}
