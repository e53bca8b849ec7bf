import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
import type { GrantBalance, GrantRecord } from "../domain/terms.ts";

const GRANT_COLUMNS = sql.fragment`id, user_id, metric_code, amount, remaining, expires_at, reason, created_by, created_at, revoked_at`;

const grantRow = z
  .object({
    id: z.string(),
    user_id: z.string(),
    metric_code: z.string(),
    amount: z.bigint(),
    remaining: z.bigint(),
    expires_at: timestampColumn.nullable(),
    reason: z.string(),
    created_by: z.string(),
    created_at: timestampColumn,
    revoked_at: timestampColumn.nullable(),
  })
  .transform(
    (row): GrantRecord => ({
      id: row.id,
      userId: row.user_id,
      metric: row.metric_code,
      amount: row.amount,
      remaining: row.remaining,
      expiresAt: row.expires_at,
      reason: row.reason,
      createdBy: row.created_by,
      createdAt: row.created_at,
      revokedAt: row.revoked_at,
    }),
  );

export type NewGrant = Omit<GrantRecord, "id" | "remaining" | "revokedAt"> & { readonly idempotencyKey: string };

/**
 * Records a grant under its idempotency key, or finds the one the key already made (`replayed`).
 * Run it under the account's lock: two calls with one key then never both insert.
 */
export async function insertGrant(db: CommonQueryMethods, grant: NewGrant): Promise<{ grant: GrantRecord; replayed: boolean }> {
  const expiresAt = grant.expiresAt === null ? null : sql.timestamp(grant.expiresAt);
  const inserted = await db.maybeOne(sql.type(grantRow)`
    insert into usage_grants (user_id, metric_code, amount, remaining, expires_at, idempotency_key, reason, created_by, created_at)
    values (
      ${grant.userId}, ${grant.metric}, ${grant.amount}, ${grant.amount}, ${expiresAt}, ${grant.idempotencyKey},
      ${grant.reason}, ${grant.createdBy}, ${sql.timestamp(grant.createdAt)}
    )
    on conflict (user_id, idempotency_key) do nothing
    returning ${GRANT_COLUMNS}
  `);
  if (inserted !== null) return { grant: inserted, replayed: false };
  const first = await db.one(sql.type(grantRow)`
    select ${GRANT_COLUMNS} from usage_grants where user_id = ${grant.userId} and idempotency_key = ${grant.idempotencyKey}
  `);
  return { grant: first, replayed: true };
}

/**
 * The account's grants, newest first: those with something left at `at`, or (`includeSpent`)
 * every one, spent, revoked and expired included.
 */
export async function findGrants(db: CommonQueryMethods, userId: string, options: { readonly includeSpent: boolean; readonly at: Date }): Promise<readonly GrantRecord[]> {
  const active = options.includeSpent
    ? sql.fragment`true`
    : sql.fragment`remaining > 0 and (expires_at is null or expires_at > ${sql.timestamp(options.at)})`;
  return db.any(sql.type(grantRow)`
    select ${GRANT_COLUMNS} from usage_grants where user_id = ${userId} and ${active}
    order by created_at desc, id
  `);
}

/**
 * Sets a grant's remaining to 0 and records when it was revoked; a grant already revoked is left
 * as it is (`revoked` false). Null when the account has no such grant.
 */
export async function revokeGrant(db: CommonQueryMethods, userId: string, grantId: string, at: Date): Promise<{ grant: GrantRecord; revoked: boolean } | null> {
  const revoked = await db.maybeOne(sql.type(grantRow)`
    update usage_grants set remaining = 0, revoked_at = ${sql.timestamp(at)}
    where user_id = ${userId} and id = ${grantId}::uuid and revoked_at is null
    returning ${GRANT_COLUMNS}
  `);
  if (revoked !== null) return { grant: revoked, revoked: true };
  const found = await db.maybeOne(sql.type(grantRow)`
    select ${GRANT_COLUMNS} from usage_grants where user_id = ${userId} and id = ${grantId}::uuid
  `);
  return found === null ? null : { grant: found, revoked: false };
}

/**
 * The grants of the standing query (db/accounts.ts), whose user is `wanted.user_id`: a JSON array
 * of those with something left at `at`, or null.
 */
export function grantsInForce(at: Date) {
  return sql.fragment`(
    select json_agg(json_build_array(g.id, g.metric_code, g.remaining::text, (extract(epoch from g.expires_at) * 1000)::float8))
    from usage_grants g
    where g.user_id = wanted.user_id and g.remaining > 0 and (g.expires_at is null or g.expires_at > ${sql.timestamp(at)})
  )`;
}

/** One element of grantsInForce's array. */
export const grantInForce = z
  .tuple([z.string(), z.string(), z.string(), z.number().nullable()])
  .transform(([id, metric, remaining, expiresMs]): GrantBalance => ({
    id,
    metric,
    remaining: BigInt(remaining),
    expiresAt: expiresMs === null ? null : new Date(expiresMs),
  }));
