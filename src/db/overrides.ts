import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
import type { Override, OverrideRecord } from "../domain/terms.ts";

const OVERRIDE_COLUMNS = sql.fragment`user_id, kind, target, enabled, quota_limit, expires_at, reason, created_by, created_at`;

const overrideRow = z
  .object({
    user_id: z.string(),
    kind: z.enum(["feature", "quota"]),
    target: z.string(),
    enabled: z.boolean().nullable(),
    quota_limit: z.bigint().nullable(),
    expires_at: timestampColumn.nullable(),
    reason: z.string(),
    created_by: z.string(),
    created_at: timestampColumn,
  })
  .transform((row): OverrideRecord => {
    const recorded = { userId: row.user_id, reason: row.reason, createdBy: row.created_by, createdAt: row.created_at };
    return row.kind === "feature"
      ? { kind: "feature", target: row.target, enabled: row.enabled === true, expiresAt: row.expires_at, ...recorded }
      : { kind: "quota", target: row.target, limit: row.quota_limit, expiresAt: row.expires_at, ...recorded };
  });

/** Sets the account's override of a feature or metric, replacing the one it had. */
export async function upsertOverride(db: CommonQueryMethods, override: OverrideRecord): Promise<OverrideRecord> {
  const enabled = override.kind === "feature" ? override.enabled : null;
  const limit = override.kind === "quota" ? override.limit : null;
  const expiresAt = override.expiresAt === null ? null : sql.timestamp(override.expiresAt);
  return db.one(sql.type(overrideRow)`
    insert into entitlement_overrides (${OVERRIDE_COLUMNS})
    values (
      ${override.userId}, ${override.kind}, ${override.target}, ${enabled}, ${limit}, ${expiresAt},
      ${override.reason}, ${override.createdBy}, ${sql.timestamp(override.createdAt)}
    )
    on conflict (user_id, kind, target) do update
      set enabled = excluded.enabled, quota_limit = excluded.quota_limit, expires_at = excluded.expires_at,
          reason = excluded.reason, created_by = excluded.created_by, created_at = excluded.created_at,
          lapse_announced = false
    returning ${OVERRIDE_COLUMNS}
  `);
}

/** Removes the account's override of a feature or metric; returns it, or null when there was none. */
export async function deleteOverride(db: CommonQueryMethods, userId: string, kind: Override["kind"], target: string): Promise<OverrideRecord | null> {
  return db.maybeOne(sql.type(overrideRow)`
    delete from entitlement_overrides where user_id = ${userId} and kind = ${kind} and target = ${target}
    returning ${OVERRIDE_COLUMNS}
  `);
}

/** The account's overrides in force at `at`, features first, then by target. */
export async function findOverrides(db: CommonQueryMethods, userId: string, at: Date): Promise<readonly OverrideRecord[]> {
  return db.any(sql.type(overrideRow)`
    select ${OVERRIDE_COLUMNS} from entitlement_overrides
    where user_id = ${userId} and (expires_at is null or expires_at > ${sql.timestamp(at)})
    order by kind, target
  `);
}

/**
 * The overrides of the standing query (db/accounts.ts), whose user is `wanted.user_id`: a JSON
 * array of those in force at `at`, or null.
 */
export function overridesInForce(at: Date) {
  return sql.fragment`(
    select json_agg(json_build_array(o.kind, o.target, o.enabled, o.quota_limit::text, (extract(epoch from o.expires_at) * 1000)::float8))
    from entitlement_overrides o
    where o.user_id = wanted.user_id and (o.expires_at is null or o.expires_at > ${sql.timestamp(at)})
  )`;
}

const optionalMs = z.number().nullable().transform((ms) => (ms === null ? null : new Date(ms)));

/** One element of overridesInForce's array. */
export const overrideInForce = z
  .tuple([z.enum(["feature", "quota"]), z.string(), z.boolean().nullable(), z.string().nullable(), optionalMs])
  .transform(([kind, target, enabled, limit, expiresAt]): Override =>
    kind === "feature"
      ? { kind, target, enabled: enabled === true, expiresAt }
      : { kind, target, limit: limit === null ? null : BigInt(limit), expiresAt },
  );
