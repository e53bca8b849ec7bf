import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";

/** Something that ends at its own time and changes what a user is entitled to when it does. */
export type Lapse = {
  readonly kind: "trial" | "override" | "grant" | "subscription";
  readonly userId: string;
  /** What lapses: the trial's plan, the override's feature or metric, the grant's id, the subscription's id. */
  readonly target: string;
  /** The override's kind, the grant's metric, the subscription's plan; "" for a trial. */
  readonly detail: string;
  readonly lapsesAt: Date;
};

const lapseRow = z
  .object({ kind: z.enum(["trial", "override", "grant", "subscription"]), user_id: z.string(), target: z.string(), detail: z.string(), lapses_at: timestampColumn })
  .transform((row): Lapse => ({ kind: row.kind, userId: row.user_id, target: row.target, detail: row.detail, lapsesAt: row.lapses_at }));

/** Lapses due by `at` that are not announced yet, earliest first. */
export async function findDueLapses(db: CommonQueryMethods, at: Date, limit: number): Promise<readonly Lapse[]> {
  const due = sql.timestamp(at);
  return db.any(sql.type(lapseRow)`
    select * from (
      select 'trial' as kind, user_id, plan_code as target, '' as detail, ends_at as lapses_at from trials
      where not lapse_announced and ended_at is null and ends_at <= ${due}
      union all
      select 'override', user_id, target, kind, expires_at from entitlement_overrides
      where not lapse_announced and expires_at is not null and expires_at <= ${due}
      union all
      select 'grant', user_id, id::text, metric_code, expires_at from usage_grants
      where not lapse_announced and expires_at is not null and expires_at <= ${due}
      union all
      select 'subscription', user_id, id::text, plan_code, expires_at from subscriptions
      where not lapse_announced and ended_at is null and expires_at is not null and expires_at <= ${due}
    ) due order by lapses_at limit ${limit}
  `);
}

/**
 * Marks the lapse announced, once: whether the user's entitlements changed by it (a grant spent or
 * revoked before it expired changes nothing). False when it was announced meanwhile, or changed
 * (an override set again with another expiry). Run it under the account's lock.
 */
export async function markLapseAnnounced(db: CommonQueryMethods, lapse: Lapse): Promise<boolean> {
  const at = sql.timestamp(lapse.lapsesAt);
  const marked = sql.type(z.object({ changed: z.boolean() }));
  switch (lapse.kind) {
    case "trial":
      return (
        (await db.maybeOneFirst(marked`
          update trials set lapse_announced = true
          where user_id = ${lapse.userId} and plan_code = ${lapse.target} and ends_at = ${at} and ended_at is null and not lapse_announced
          returning true as changed
        `)) ?? false
      );
    case "override":
      return (
        (await db.maybeOneFirst(marked`
          update entitlement_overrides set lapse_announced = true
          where user_id = ${lapse.userId} and kind = ${lapse.detail} and target = ${lapse.target} and expires_at = ${at} and not lapse_announced
          returning true as changed
        `)) ?? false
      );
    case "grant":
      return (
        (await db.maybeOneFirst(marked`
          update usage_grants set lapse_announced = true
          where id = ${lapse.target}::uuid and not lapse_announced
          returning remaining > 0 and revoked_at is null as changed
        `)) ?? false
      );
    case "subscription":
      return (
        (await db.maybeOneFirst(marked`
          update subscriptions set lapse_announced = true
          where id = ${lapse.target}::bigint and ended_at is null and not lapse_announced
          returning true as changed
        `)) ?? false
      );
  }
}
