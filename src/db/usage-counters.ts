import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
const usedRow = z.object({ used: z.bigint() });
const levelRow = z.object({ used: z.bigint(), reserved: z.bigint() });
const lockedRow = z.object({ used: z.bigint(), reserved: z.bigint(), lapsed: z.boolean().nullable() });
const reservedRow = z.object({ reserved: z.bigint() });
const totalByMetricRow = z.object({ metric_code: z.string(), total: z.bigint() });

type PeriodRow = { readonly metric: string; readonly periodStart: Date };

/** The given (metric, period) rows as a relation `wanted (metric_code, period_start)`. */
function wantedRows(rows: readonly PeriodRow[]) {
  return sql.fragment`unnest(
    ${sql.array(rows.map((row) => row.metric), "text")}::text[],
    ${sql.array(rows.map((row) => row.periodStart.toISOString()), "timestamptz")}::timestamptz[]
  ) as wanted (metric_code, period_start)`;
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

export type Consumption = UsageRowKey & {
  /** Positive, or negative to lower a gauge (which stops at 0). */
  readonly amount: bigint;
  /** used + amount must not pass this; lowering is always allowed. */
  readonly ceiling: bigint;
  readonly now: Date;
};

/** A row's count and what its reservations hold, at a decision. */
export type RowLevel = { readonly used: bigint; readonly reserved: bigint };

/**
 * One atomic check-and-consume: adds the amount if it fits under the ceiling, with what the row's
 * reservations hold counted as used, and returns the new amount, or returns null and changes
 * nothing. The row lock taken by the upsert serializes racing calls, and the ceiling is checked
 * against the locked, latest row, so N racing calls against a limit L grant exactly L units. A row
 * one of whose holds has expired is left to consume_usage_with_grants, which sums them again. Also
 * records the account on first sight.
 */
export async function consumeUsage(db: CommonQueryMethods, consumption: Consumption): Promise<RowLevel | null> {
  const { userId, metric, periodStart, amount, ceiling, now } = consumption;
  return db.maybeOne(sql.prepared("usage_consume", levelRow)`
    with account as (
      insert into accounts (user_id, created_at) values (${userId}, ${sql.timestamp(now)})
      on conflict (user_id) do nothing
    )
    insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
    select ${userId}, ${metric}, ${sql.timestamp(periodStart)}, greatest(${amount}::bigint, 0), ${sql.timestamp(now)}
    where ${amount}::bigint <= ${ceiling}::bigint
    on conflict (user_id, metric_code, period_start) do update
      set used = greatest(c.used + ${amount}::bigint, 0), updated_at = excluded.updated_at
      where (c.reserved_until is null or c.reserved_until > ${sql.timestamp(now)})
        and (${amount}::bigint <= 0 or c.used + c.reserved + ${amount}::bigint <= ${ceiling}::bigint)
    returning c.used, c.reserved
  `);
}

/**
 * What a decision answers besides granted or not: its row's amount after its turn, what the
 * row's reservations hold, and what the account's active grants of the metric hold after it when
 * it weighed them (null otherwise).
 */
export type ConsumptionDecisionAmounts = RowLevel & { readonly grantRemaining: bigint | null };

/** What became of one consumption. */
export type ConsumptionDecision = ConsumptionDecisionAmounts & { readonly granted: boolean };

const withGrantsRow = z.object({ granted: z.boolean(), used: z.bigint(), grant_remaining: z.bigint().nullable(), reserved: z.bigint() });

/**
 * consumeUsage, and for a consumption it refused, the decision again under the row's lock with
 * holds and grants (the consume_usage_with_grants function, which weighs grants under a limit only).
 */
export async function decideConsumption(db: CommonQueryMethods, consumption: Consumption): Promise<ConsumptionDecision> {
  const level = await consumeUsage(db, consumption);
  if (level !== null) return { granted: true, ...level, grantRemaining: null };
  const { userId, metric, periodStart, amount, ceiling, now } = consumption;
  const decided = await db.one(sql.prepared("usage_consume_with_grants", withGrantsRow)`
    select granted, used, grant_remaining, reserved from consume_usage_with_grants(
      ${userId}, ${metric}, ${sql.timestamp(periodStart)}, ${amount}::bigint, ${ceiling}::bigint, ${sql.timestamp(now)}
    )
  `);
  return { granted: decided.granted, used: decided.used, grantRemaining: decided.grant_remaining, reserved: decided.reserved };
}

/**
 * Locks a counter row (made at 0 if new) until the transaction ends; returns its amount and what
 * its reservations hold at `now` (summed again, after the lock, when one of them has expired).
 */
export async function lockUsageRow(tx: CommonQueryMethods, row: UsageRowKey, now: Date): Promise<RowLevel> {
  const locked = await tx.one(sql.type(lockedRow)`
    insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
    values (${row.userId}, ${row.metric}, ${sql.timestamp(row.periodStart)}, 0, ${sql.timestamp(now)})
    on conflict (user_id, metric_code, period_start) do update set used = c.used
    returning c.used, c.reserved, c.reserved_until <= ${sql.timestamp(now)} as lapsed
  `);
  if (locked.lapsed !== true) return { used: locked.used, reserved: locked.reserved };
  const reserved = await tx.oneFirst(sql.type(reservedRow)`
    select reserved from row_reserved(${row.userId}, ${row.metric}, ${sql.timestamp(row.periodStart)}, ${sql.timestamp(now)})
  `);
  return { used: locked.used, reserved };
}

/** Sets a row the transaction holds (lockUsageRow) to `used`; returns it. */
export async function setUsageRow(tx: CommonQueryMethods, row: UsageRowKey, used: bigint, now: Date): Promise<bigint> {
  return tx.oneFirst(sql.type(usedRow)`
    update usage_counters set used = ${used}, updated_at = ${sql.timestamp(now)}
    where user_id = ${row.userId} and metric_code = ${row.metric} and period_start = ${sql.timestamp(row.periodStart)}
    returning used
  `);
}

/**
 * Sets rows of one user back to zero: deletes them, or sets their count to 0 where reservations
 * hold on them (the row keeps what they hold).
 */
export async function resetUsageRows(db: CommonQueryMethods, userId: string, rows: readonly PeriodRow[]): Promise<void> {
  await db.query(sql.unsafe`
    with kept as (
      update usage_counters c set used = 0, alerted_percent = 0
      from ${wantedRows(rows)}
      where c.user_id = ${userId} and c.metric_code = wanted.metric_code and c.period_start = wanted.period_start
        and c.reserved_until is not null
    )
    delete from usage_counters c
    using ${wantedRows(rows)}
    where c.user_id = ${userId} and c.metric_code = wanted.metric_code and c.period_start = wanted.period_start
      and c.reserved_until is null
  `);
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

/** A usage row and its count. */
export type UsageRowCount = UsageRowKey & { readonly used: bigint };

const recentRow = z.object({ user_id: z.string(), metric_code: z.string(), period_start: timestampColumn, used: z.bigint() });

/**
 * Every user's rows of `metrics` whose periods started at `since` or later, by user (for the
 * platform's totals of metrics whose periods follow each subscriber's billing day).
 */
export async function recentUsageRows(
  db: CommonQueryMethods,
  metrics: readonly string[],
  since: Date,
): Promise<ReadonlyMap<string, readonly UsageRowCount[]>> {
  const rows = await db.any(sql.type(recentRow)`
    select user_id, metric_code, period_start, used from usage_counters
    where metric_code = any(${sql.array(metrics, "text")}) and period_start >= ${sql.timestamp(since)} and used > 0
  `);
  const byUser = new Map<string, UsageRowCount[]>();
  for (const row of rows) {
    let list = byUser.get(row.user_id);
    if (list === undefined) byUser.set(row.user_id, (list = []));
    list.push({ userId: row.user_id, metric: row.metric_code, periodStart: row.period_start, used: row.used });
  }
  return byUser;
}

const batchDecisionRow = withGrantsRow.extend({ ordinal: z.number() });

/**
 * Decides and writes many consumptions in one statement (the consume_usage_batch function):
 * in arrival order, each against its row's amount after the ones before it, with the rows locked
 * in key order; one past its ceiling draws what the allowance cannot cover from the account's
 * grants; what the rows' reservations hold counts as used. Returns, in the order given, each
 * decision (ConsumptionDecision). Also records the accounts on first sight.
 */
export async function consumeUsageBatch(
  db: CommonQueryMethods,
  consumptions: readonly Consumption[],
): Promise<ConsumptionDecision[]> {
  const { rows, positionOf } = lockOrder(consumptions);
  const decisions = await db.any(sql.prepared("usage_consume_batch", batchDecisionRow)`
    select ordinal, granted, used, grant_remaining, reserved from consume_usage_batch(
      ${rowArrays(rows)},
      ${sql.array(consumptions.map(positionOf), "int4")}::integer[],
      ${sql.array(consumptions.map((row) => row.amount), "int8")}::bigint[],
      ${sql.array(consumptions.map((row) => row.ceiling), "int8")}::bigint[],
      ${sql.timestamp(consumptions[0]!.now)}
    )
  `);
  return inArrivalOrder(decisions, consumptions.length, (row) => ({
    granted: row.granted,
    used: row.used,
    grantRemaining: row.grant_remaining,
    reserved: row.reserved,
  }));
}

/** A batch function's rows (numbered from 1 in arrival order) as outcomes in arrival order. */
export function inArrivalOrder<R extends { readonly ordinal: number }, O>(rows: readonly R[], count: number, outcome: (row: R) => O): O[] {
  const byOrdinal = new Map(rows.map((row) => [row.ordinal, row]));
  return Array.from({ length: count }, (_, index) => outcome(byOrdinal.get(index + 1)!));
}

/**
 * The distinct rows of a batch in the one order every batch locks its rows in (so batches never
 * deadlock one another), and each row's 1-based position in it. The order is PostgreSQL's
 * `order by user_id collate "C", metric_code collate "C", period_start`, which
 * settle_reservations_batch locks in: strings by code point, as UTF-8 bytes compare.
 */
export function lockOrder(batch: readonly UsageRowKey[]): { rows: UsageRowKey[]; positionOf: (row: UsageRowKey) => number } {
  const rows = [...new Map(batch.map((row) => [usageRowId(row), row])).values()].sort(
    (a, b) => byCodePoints(a.userId, b.userId) || byCodePoints(a.metric, b.metric) || a.periodStart.getTime() - b.periodStart.getTime(),
  );
  const position = new Map(rows.map((row, index) => [usageRowId(row), index + 1]));
  return { rows, positionOf: (row) => position.get(usageRowId(row))! };
}

/** Strings compared by code point (UTF-16 units order surrogate pairs below U+E000..U+FFFF; UTF-8 does not). */
function byCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Only a surrogate against a unit of U+E000..U+FFFF compares otherwise as code points.
    const surrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdfff;
    if (surrogate(x) !== surrogate(y) && Math.max(x, y) >= 0xe000) return surrogate(x) ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** Rows as the three array arguments (users, metrics, periods) of the batch functions. */
export function rowArrays(rows: readonly UsageRowKey[]) {
  return sql.fragment`${sql.array(rows.map((row) => row.userId), "text")}::text[],
      ${sql.array(rows.map((row) => row.metric), "text")}::text[],
      ${sql.array(rows.map((row) => row.periodStart.toISOString()), "timestamptz")}::timestamptz[]`;
}
