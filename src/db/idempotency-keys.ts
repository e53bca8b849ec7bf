import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import type { Consumption } from "./usage-counters.ts";

/** What the first increment under a key did, replayed to its retries. */
export type IdempotentIncrement = {
  readonly metric: string;
  readonly amount: bigint;
  readonly usedAfter: bigint;
  readonly limit: bigint | null;
  readonly createdAt: Date;
};

const timestamp = z.number().transform((ms) => new Date(ms));

const onceRow = z.object({
  outcome: z.enum(["granted", "refused", "replayed"]),
  used: z.bigint().nullable(),
  first_metric: z.string().nullable(),
  first_amount: z.bigint().nullable(),
  first_used_after: z.bigint().nullable(),
  first_limit: z.bigint().nullable(),
  first_created_at: timestamp.nullable(),
});

/** What became of an increment under a key. */
export type KeyedOutcome =
  | { readonly kind: "granted" | "refused"; readonly used: bigint }
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
 * result instead of counting again; a racing retry waits on the key's unique index until the
 * first call commits. A refused increment gives its key up, so a later retry is decided afresh;
 * `used` is then the row's amount. Also records the account on first sight.
 */
export async function consumeUsageOnce(db: CommonQueryMethods, consumption: KeyedConsumption): Promise<KeyedOutcome> {
  const { userId, metric, periodStart, amount, ceiling, limit, key, now, expiresAt } = consumption;
  const row = await db.one(sql.prepared("usage_consume_once", onceRow)`
    select outcome, used, first_metric, first_amount, first_used_after, first_limit, first_created_at
    from consume_usage_once(
      ${userId}, ${metric}, ${sql.timestamp(periodStart)}, ${amount}::bigint, ${ceiling}::bigint,
      ${limit}::bigint, ${key}, ${sql.timestamp(now)}, ${sql.timestamp(expiresAt)}
    )
  `);
  // The function fills `used` for granted and refused increments, the first_* columns for replays.
  if (row.outcome !== "replayed") return { kind: row.outcome, used: row.used! };
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
