import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
import { inArrivalOrder, lockOrder, rowArrays, type Consumption, type ConsumptionDecisionAmounts } from "./usage-counters.ts";

/** What the first increment under a key did, replayed to its retries. */
export type IdempotentIncrement = {
  readonly metric: string;
  readonly amount: bigint;
  readonly usedAfter: bigint;
  readonly limit: bigint | null;
  readonly createdAt: Date;
};


const onceRow = z.object({
  outcome: z.enum(["granted", "refused", "replayed"]),
  used: z.bigint().nullable(),
  grant_remaining: z.bigint().nullable(),
  reserved: z.bigint().nullable(),
  first_metric: z.string().nullable(),
  first_amount: z.bigint().nullable(),
  first_used_after: z.bigint().nullable(),
  first_limit: z.bigint().nullable(),
  first_created_at: timestampColumn.nullable(),
});

const onceBatchRow = onceRow.extend({ ordinal: z.number() });

/** What became of an increment under a key. */
export type KeyedOutcome =
  | ({ readonly kind: "granted" | "refused" } & ConsumptionDecisionAmounts)
  | { readonly kind: "replayed"; readonly first: IdempotentIncrement };

export type KeyedConsumption = Consumption & {
  readonly key: string;
  /** The plan's limit, recorded with the result for replays. */
  readonly limit: bigint | null;
  readonly expiresAt: Date;
};

/**
 * An increment under an idempotency key, exactly once, in one statement (the consume_usage_once
 * function): the key is claimed, and a key already held (and not expired) replays its first
 * result instead of counting again; a racing retry waits (on the counter row, locked before the
 * key as batches lock theirs) until the first call commits. A refused increment gives its key
 * up, so a later retry is decided afresh; `used` is then the row's amount. Also records the
 * account on first sight.
 */
export async function consumeUsageOnce(db: CommonQueryMethods, consumption: KeyedConsumption): Promise<KeyedOutcome> {
  const { userId, metric, periodStart, amount, ceiling, limit, key, now, expiresAt } = consumption;
  const row = await db.one(sql.prepared("usage_consume_once", onceRow)`
    select outcome, used, grant_remaining, reserved, first_metric, first_amount, first_used_after, first_limit, first_created_at
    from consume_usage_once(
      ${userId}, ${metric}, ${sql.timestamp(periodStart)}, ${amount}::bigint, ${ceiling}::bigint,
      ${limit}::bigint, ${key}, ${sql.timestamp(now)}, ${sql.timestamp(expiresAt)}
    )
  `);
  return keyedOutcome(row);
}

/**
 * Keyed increments that arrived together, in one statement (the consume_usage_once_batch
 * function): their accounts and counter rows locked in key order, then each decided in arrival
 * order exactly as consumeUsageOnce decides it alone (a key used twice in the batch replays its
 * first result, or is decided afresh after a refusal). Outcomes in the order given.
 */
export async function consumeUsageOnceBatch(db: CommonQueryMethods, consumptions: readonly KeyedConsumption[]): Promise<KeyedOutcome[]> {
  const { rows } = lockOrder(consumptions);
  const found = await db.any(sql.prepared("usage_consume_once_batch", onceBatchRow)`
    select ordinal, outcome, used, grant_remaining, reserved, first_metric, first_amount, first_used_after, first_limit, first_created_at
    from consume_usage_once_batch(
      ${rowArrays(rows)},
      ${rowArrays(consumptions)},
      ${sql.array(consumptions.map((row) => row.amount), "int8")}::bigint[],
      ${sql.array(consumptions.map((row) => row.ceiling), "int8")}::bigint[],
      ${sql.array(consumptions.map((row) => row.limit), "int8")}::bigint[],
      ${sql.array(consumptions.map((row) => row.key), "text")}::text[],
      ${sql.array(consumptions.map((row) => row.now.toISOString()), "timestamptz")}::timestamptz[],
      ${sql.array(consumptions.map((row) => row.expiresAt.toISOString()), "timestamptz")}::timestamptz[]
    )
  `);
  return inArrivalOrder(found, consumptions.length, keyedOutcome);
}

/**
 * The function fills `used` and `reserved` for granted and refused increments (and
 * `grant_remaining` when they weighed grants), the first_* columns for replays.
 */
function keyedOutcome(row: z.infer<typeof onceRow>): KeyedOutcome {
  if (row.outcome !== "replayed") return { kind: row.outcome, used: row.used!, grantRemaining: row.grant_remaining, reserved: row.reserved! };
  return {
    kind: "replayed",
    first: {
      metric: row.first_metric!,
      amount: row.first_amount!,
      usedAfter: row.first_used_after!,
      limit: row.first_limit,
      createdAt: row.first_created_at!,
    },
  };
}

/** Deletes keys past their retention; returns how many. */
export async function deleteExpiredIdempotencyKeys(db: CommonQueryMethods, now: Date): Promise<number> {
  const result = await db.query(sql.unsafe`
    delete from idempotency_keys where expires_at <= ${sql.timestamp(now)}
  `);
  return result.rowCount;
}
