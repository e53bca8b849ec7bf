import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";

/** What the first increment under a key did, replayed to its retries. */
export type IdempotentIncrement = {
  readonly metric: string;
  readonly amount: bigint;
  readonly usedAfter: bigint;
  readonly limit: bigint | null;
  readonly createdAt: Date;
};

const timestamp = z.number().transform((ms) => new Date(ms));

const recordRow = z
  .object({
    metric_code: z.string(),
    amount: z.bigint(),
    used_after: z.bigint(),
    quota_limit: z.bigint().nullable(),
    created_at: timestamp,
  })
  .transform(
    (row): IdempotentIncrement => ({
      metric: row.metric_code,
      amount: row.amount,
      usedAfter: row.used_after,
      limit: row.quota_limit,
      createdAt: row.created_at,
    }),
  );

const claimRow = z.object({ claimed: z.boolean() });
const noRow = z.object({});

export type KeyClaim = {
  readonly userId: string;
  readonly key: string;
  readonly metric: string;
  readonly amount: bigint;
  readonly now: Date;
  readonly expiresAt: Date;
};

/**
 * Claims a key for an increment about to run in the same transaction. Returns null when the
 * claim is ours; otherwise the record of the first increment under the key. A retry racing the
 * first call waits here on the key's unique index until the first commits (then replays it) or
 * rolls back (then claims the key itself). An expired key is claimed afresh. Also records the
 * account on first sight.
 */
export async function claimIdempotencyKey(
  db: CommonQueryMethods,
  claim: KeyClaim,
): Promise<IdempotentIncrement | null> {
  const { userId, key, metric, amount, now, expiresAt } = claim;
  const claimed = await db.maybeOneFirst(sql.prepared("idempotency_claim", claimRow)`
    with account as (
      insert into accounts (user_id, created_at) values (${userId}, ${sql.timestamp(now)})
      on conflict (user_id) do nothing
    )
    insert into idempotency_keys as k
      (user_id, idempotency_key, metric_code, amount, created_at, expires_at)
    values (${userId}, ${key}, ${metric}, ${amount}, ${sql.timestamp(now)}, ${sql.timestamp(expiresAt)})
    on conflict (user_id, idempotency_key) do update
      set metric_code = excluded.metric_code,
          amount = excluded.amount,
          used_after = null,
          quota_limit = null,
          created_at = excluded.created_at,
          expires_at = excluded.expires_at
      where k.expires_at <= excluded.created_at
    returning true as claimed
  `);
  if (claimed === true) {
    return null;
  }
  return db.one(sql.prepared("idempotency_find", recordRow)`
    select metric_code, amount, used_after, quota_limit, created_at
    from idempotency_keys
    where user_id = ${userId} and idempotency_key = ${key}
  `);
}

/** Stores the result of the increment that claimed the key. */
export async function recordIdempotentResult(
  db: CommonQueryMethods,
  result: { userId: string; key: string; usedAfter: bigint; limit: bigint | null },
): Promise<void> {
  await db.query(sql.prepared("idempotency_record", noRow)`
    update idempotency_keys
    set used_after = ${result.usedAfter}, quota_limit = ${result.limit}
    where user_id = ${result.userId} and idempotency_key = ${result.key}
  `);
}

/** Deletes keys past their retention; returns how many. */
export async function deleteExpiredIdempotencyKeys(db: CommonQueryMethods, now: Date): Promise<number> {
  const result = await db.query(sql.unsafe`
    delete from idempotency_keys where expires_at <= ${sql.timestamp(now)}
  `);
  return result.rowCount;
}
