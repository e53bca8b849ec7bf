import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { MAX_USAGE } from "../domain/quota.ts";

const usageRow = z.object({ user_id: z.string(), metric_code: z.string(), period_start: z.number(), used: z.bigint() });
const usedRow = z.object({ used: z.bigint() });
const usedByMetricRow = z.object({ metric_code: z.string(), used: z.bigint() });
const totalByMetricRow = z.object({ metric_code: z.string(), total: z.bigint() });

type PeriodRow = { readonly metric: string; readonly periodStart: Date };

/** The given (metric, period) rows as a relation `wanted (metric_code, period_start)`. */
function wantedRows(rows: readonly PeriodRow[]) {
  return sql.fragment`unnest(
    ${sql.array(rows.map((row) => row.metric), "text")}::text[],
    ${sql.array(rows.map((row) => row.periodStart.toISOString()), "timestamptz")}::timestamptz[]
  ) as wanted (metric_code, period_start)`;
}

/** The given rows of any users as a relation `wanted (user_id, metric_code, period_start)`. */
function wantedUserRows(rows: readonly UsageRowKey[]) {
  return sql.fragment`unnest(${rowArrays(rows)}) as wanted (user_id, metric_code, period_start)`;
}

export type UsageRowKey = {
  readonly userId: string;
  readonly metric: string;
  /** Start of the period the row counts (the epoch for a gauge). */
  readonly periodStart: Date;
};

/** A usage row's identity as one string, for maps. */
export function usageRowId(row: UsageRowKey): string {
  return `${row.userId}\u0000${row.metric}\u0000${row.periodStart.getTime()}`;
}

/** The amounts of several rows of any users, in the order asked; 0 for rows that do not exist. */
export async function findUsedRows(db: CommonQueryMethods, rows: readonly UsageRowKey[]): Promise<bigint[]> {
  const found = await db.any(sql.prepared("usage_find_rows", usageRow)`
    select c.user_id, c.metric_code, c.period_start, c.used
    from usage_counters c
    join ${wantedUserRows(rows)}
      on c.user_id = wanted.user_id and c.metric_code = wanted.metric_code and c.period_start = wanted.period_start
  `);
  const used = new Map(
    found.map((row) => [usageRowId({ userId: row.user_id, metric: row.metric_code, periodStart: new Date(row.period_start) }), row.used]),
  );
  return rows.map((row) => used.get(usageRowId(row)) ?? 0n);
}

/** The amount in one row, 0 when the row does not exist yet. */
export async function findUsed(db: CommonQueryMethods, key: UsageRowKey): Promise<bigint> {
  const used = await db.maybeOneFirst(sql.prepared("usage_find_one", usedRow)`
    select used from usage_counters
    where user_id = ${key.userId} and metric_code = ${key.metric}
      and period_start = ${sql.timestamp(key.periodStart)}
  `);
  return used ?? 0n;
}

/** The amounts of several rows of one user, by metric; absent rows are left out. */
export async function findUsedByMetric(
  db: CommonQueryMethods,
  userId: string,
  rows: readonly PeriodRow[],
): Promise<ReadonlyMap<string, bigint>> {
  const found = await db.any(sql.prepared("usage_find_by_metric", usedByMetricRow)`
    select c.metric_code, c.used
    from usage_counters c
    join ${wantedRows(rows)}
      on c.metric_code = wanted.metric_code and c.period_start = wanted.period_start
    where c.user_id = ${userId}
  `);
  return new Map(found.map((row) => [row.metric_code, row.used]));
}

export type Consumption = UsageRowKey & {
  /** Positive, or negative to lower a gauge (which stops at 0). */
  readonly amount: bigint;
  /** used + amount must not pass this; lowering is always allowed. */
  readonly ceiling: bigint;
  readonly now: Date;
};

/**
 * One atomic check-and-consume: adds the amount if it fits under the ceiling and returns the new
 * amount, or returns null and changes nothing. The row lock taken by the upsert serializes racing
 * calls, and the ceiling is checked against the locked, latest row, so N racing calls against a
 * limit L grant exactly L units. Also records the account on first sight.
 */
export async function consumeUsage(db: CommonQueryMethods, consumption: Consumption): Promise<bigint | null> {
  const { userId, metric, periodStart, amount, ceiling, now } = consumption;
  return db.maybeOneFirst(sql.prepared("usage_consume", usedRow)`
    with account as (
      insert into accounts (user_id, created_at) values (${userId}, ${sql.timestamp(now)})
      on conflict (user_id) do nothing
    )
    insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
    select ${userId}, ${metric}, ${sql.timestamp(periodStart)}, greatest(${amount}::bigint, 0), ${sql.timestamp(now)}
    where ${amount}::bigint <= ${ceiling}::bigint
    on conflict (user_id, metric_code, period_start) do update
      set used = greatest(c.used + ${amount}::bigint, 0), updated_at = excluded.updated_at
      where ${amount}::bigint <= 0 or c.used + ${amount}::bigint <= ${ceiling}::bigint
    returning c.used
  `);
}

/**
 * What became of one consumption: granted or not, its row's amount after its turn, and what the
 * account's active grants of the metric hold after it when it weighed them (null otherwise).
 */
export type ConsumptionDecision = { readonly granted: boolean; readonly used: bigint; readonly grantRemaining: bigint | null };

const withGrantsRow = z.object({ granted: z.boolean(), used: z.bigint(), grant_remaining: z.bigint().nullable() });

/**
 * consumeUsage, and for a consumption it refused, the decision again with grants (the
 * consume_usage_with_grants function) when the metric has a limit, or the row's amount.
 */
export async function decideConsumption(db: CommonQueryMethods, consumption: Consumption): Promise<ConsumptionDecision> {
  const used = await consumeUsage(db, consumption);
  if (used !== null) return { granted: true, used, grantRemaining: null };
  if (consumption.amount <= 0n || consumption.ceiling >= MAX_USAGE) {
    return { granted: false, used: await findUsed(db, consumption), grantRemaining: null };
  }
  const { userId, metric, periodStart, amount, ceiling, now } = consumption;
  const decided = await db.one(sql.prepared("usage_consume_with_grants", withGrantsRow)`
    select granted, used, grant_remaining from consume_usage_with_grants(
      ${userId}, ${metric}, ${sql.timestamp(periodStart)}, ${amount}::bigint, ${ceiling}::bigint, ${sql.timestamp(now)}
    )
  `);
  return { granted: decided.granted, used: decided.used, grantRemaining: decided.grant_remaining };
}

/** Locks a counter row (made at 0 if new) until the transaction ends; returns its amount. */
export async function lockUsageRow(tx: CommonQueryMethods, row: UsageRowKey, now: Date): Promise<bigint> {
  return tx.oneFirst(sql.type(usedRow)`
    insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
    values (${row.userId}, ${row.metric}, ${sql.timestamp(row.periodStart)}, 0, ${sql.timestamp(now)})
    on conflict (user_id, metric_code, period_start) do update set used = c.used
    returning c.used
  `);
}

/** Sets a row the transaction holds (lockUsageRow) to `used`; returns it. */
export async function setUsageRow(tx: CommonQueryMethods, row: UsageRowKey, used: bigint, now: Date): Promise<bigint> {
  return tx.oneFirst(sql.type(usedRow)`
    update usage_counters set used = ${used}, updated_at = ${sql.timestamp(now)}
    where user_id = ${row.userId} and metric_code = ${row.metric} and period_start = ${sql.timestamp(row.periodStart)}
    returning used
  `);
}

/** Sets rows of one user back to zero (by deleting them); returns how many existed. */
export async function deleteUsageRows(
  db: CommonQueryMethods,
  userId: string,
  rows: readonly PeriodRow[],
): Promise<number> {
  const result = await db.query(sql.unsafe`
    delete from usage_counters c
    using ${wantedRows(rows)}
    where c.user_id = ${userId} and c.metric_code = wanted.metric_code and c.period_start = wanted.period_start
  `);
  return result.rowCount;
}

/** Usage summed over all users, per metric, for the given (metric, period) rows. */
export async function sumUsageByMetric(
  db: CommonQueryMethods,
  rows: readonly PeriodRow[],
): Promise<ReadonlyMap<string, bigint>> {
  const totals = await db.any(sql.type(totalByMetricRow)`
    select c.metric_code, sum(c.used)::bigint as total
    from usage_counters c
    join ${wantedRows(rows)}
      on c.metric_code = wanted.metric_code and c.period_start = wanted.period_start
    group by c.metric_code
  `);
  return new Map(totals.map((row) => [row.metric_code, row.total]));
}

const batchDecisionRow = z.object({ ordinal: z.number(), granted: z.boolean(), used: z.bigint(), grant_remaining: z.bigint().nullable() });

/**
 * Decides and writes many consumptions in one statement (the consume_usage_batch function):
 * in arrival order, each against its row's amount after the ones before it, with the rows locked
 * in key order; one past its ceiling draws what the allowance cannot cover from the account's
 * grants. Returns, in the order given, whether each was granted, its row's amount after its turn
 * and, when it weighed grants, what they hold. Also records the accounts on first sight.
 */
export async function consumeUsageBatch(
  db: CommonQueryMethods,
  consumptions: readonly Consumption[],
): Promise<ConsumptionDecision[]> {
  const { rows, positionOf } = lockOrder(consumptions);
  const decisions = await db.any(sql.prepared("usage_consume_batch", batchDecisionRow)`
    select ordinal, granted, used, grant_remaining from consume_usage_batch(
      ${rowArrays(rows)},
      ${sql.array(consumptions.map(positionOf), "int4")}::integer[],
      ${sql.array(consumptions.map((row) => row.amount), "int8")}::bigint[],
      ${sql.array(consumptions.map((row) => row.ceiling), "int8")}::bigint[],
      ${sql.timestamp(consumptions[0]!.now)}
    )
  `);
  return inArrivalOrder(decisions, consumptions.length, (row) => ({ granted: row.granted, used: row.used, grantRemaining: row.grant_remaining }));
}

/** A batch function's rows (numbered from 1 in arrival order) as outcomes in arrival order. */
export function inArrivalOrder<R extends { readonly ordinal: number }, O>(rows: readonly R[], count: number, outcome: (row: R) => O): O[] {
  const byOrdinal = new Map(rows.map((row) => [row.ordinal, row]));
  return Array.from({ length: count }, (_, index) => outcome(byOrdinal.get(index + 1)!));
}

/**
 * The distinct rows of a batch in the one order every batch locks its rows in (so batches never
 * deadlock one another), and each row's 1-based position in it.
 */
export function lockOrder(batch: readonly UsageRowKey[]): { rows: UsageRowKey[]; positionOf: (row: UsageRowKey) => number } {
  const rows = [...new Map(batch.map((row) => [usageRowId(row), row])).entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, row]) => row);
  const position = new Map(rows.map((row, index) => [usageRowId(row), index + 1]));
  return { rows, positionOf: (row) => position.get(usageRowId(row))! };
}

/** Rows as the three array arguments (users, metrics, periods) of the batch functions. */
export function rowArrays(rows: readonly UsageRowKey[]) {
  return sql.fragment`${sql.array(rows.map((row) => row.userId), "text")}::text[],
      ${sql.array(rows.map((row) => row.metric), "text")}::text[],
      ${sql.array(rows.map((row) => row.periodStart.toISOString()), "timestamptz")}::timestamptz[]`;
}
