import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";

/** What the first call under a key asked and answered (db/consumptions.ts decides ConsumeUsage's in SQL). */
export type RememberedCall = {
  /** "consume", "refund" or "set". */
  readonly kind: string;
  readonly metrics: readonly string[];
  readonly amounts: readonly bigint[];
  readonly usedAfter: readonly bigint[];
  readonly quotaLimits: readonly (bigint | null)[];
  readonly createdAt: Date;
};

/** A key this call now holds (it decides), or one a first call holds (its result is the answer). */
export type ClaimedKey = { readonly kind: "claimed" } | { readonly kind: "held"; readonly first: RememberedCall };

/** An int8[] read as text[]: the driver's int8 array parser cannot take null elements (unlimited). */
const bigints = z.array(z.string().nullable()).transform((values) => values.map((value) => (value === null ? null : BigInt(value))));

const keyRow = z.object({
  kind: z.string(),
  metrics: z.array(z.string()),
  amounts: bigints,
  used_after: bigints,
  quota_limits: bigints,
  created_at: timestampColumn,
});

/**
 * Claims a key for a refund or a level (consume_items_batch claims ConsumeUsage's itself): a key
 * unknown or expired is this call's; one held answers with its first call. Run it in the call's
 * transaction after locking the counter row (the order every path takes: rows, then keys).
 */
export async function claimConsumptionKey(
  db: CommonQueryMethods,
  claim: { userId: string; key: string; kind: "refund" | "set"; metrics: readonly string[]; amounts: readonly bigint[]; at: Date; expiresAt: Date },
): Promise<ClaimedKey> {
  const claimed = await db.maybeOneFirst(sql.type(z.object({ claimed: z.boolean() }))`
    insert into consumption_keys as x (user_id, idempotency_key, kind, metrics, amounts, created_at, expires_at)
    values (
      ${claim.userId}, ${claim.key}, ${claim.kind}, ${sql.array(claim.metrics, "text")}, ${sql.array(claim.amounts, "int8")},
      ${sql.timestamp(claim.at)}, ${sql.timestamp(claim.expiresAt)}
    )
    on conflict (user_id, idempotency_key) do update
      set kind = excluded.kind, metrics = excluded.metrics, amounts = excluded.amounts, used_after = null,
          quota_limits = null, created_at = excluded.created_at, expires_at = excluded.expires_at
      where x.expires_at <= excluded.created_at
    returning true as claimed
  `);
  if (claimed !== null) return { kind: "claimed" };
  const row = await db.one(sql.type(keyRow)`
    select kind, metrics, amounts::text[], used_after::text[], quota_limits::text[], created_at from consumption_keys
    where user_id = ${claim.userId} and idempotency_key = ${claim.key}
  `);
  return {
    kind: "held",
    first: {
      kind: row.kind,
      metrics: row.metrics,
      amounts: row.amounts.map((amount) => amount!),
      usedAfter: row.used_after.map((used) => used!),
      quotaLimits: row.quota_limits,
      createdAt: row.created_at,
    },
  };
}

/** Records what the call holding the key answered, before its transaction commits. */
export async function recordKeyResult(db: CommonQueryMethods, userId: string, key: string, usedAfter: readonly bigint[], limits: readonly (bigint | null)[]): Promise<void> {
  await db.query(sql.unsafe`
    update consumption_keys set used_after = ${sql.array(usedAfter, "int8")}, quota_limits = ${sql.array(limits, "int8")}
    where user_id = ${userId} and idempotency_key = ${key}
  `);
}

/** Deletes keys past their retention; returns how many. */
export async function deleteExpiredConsumptionKeys(db: CommonQueryMethods, now: Date): Promise<number> {
  const result = await db.query(sql.unsafe`delete from consumption_keys where expires_at <= ${sql.timestamp(now)}`);
  return result.rowCount;
}
