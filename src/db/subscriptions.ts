import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
import type { SubscriptionRecord } from "../domain/subscriptions.ts";


const subscriptionRow = z
  .object({
    user_id: z.string(),
    plan_code: z.string(),
    plan_version: z.number(),
    started_at: timestampColumn,
    expires_at: timestampColumn.nullable(),
    ended_at: timestampColumn.nullable(),
  })
  .transform(
    (row): SubscriptionRecord => ({
      userId: row.user_id,
      planCode: row.plan_code,
      planVersion: row.plan_version,
      startedAt: row.started_at,
      expiresAt: row.expires_at,
      endedAt: row.ended_at,
    }),
  );

/**
 * Ends the current subscription (if any) and starts a new one, on the plan's latest version
 * committed in the database (not a replica's possibly older catalog). Run it in a transaction
 * that holds the account lock, so the one-current-subscription index is never contended.
 */
export async function replaceCurrentSubscription(
  db: CommonQueryMethods,
  subscription: Pick<SubscriptionRecord, "userId" | "planCode" | "startedAt" | "expiresAt">,
): Promise<SubscriptionRecord> {
  await db.query(sql.unsafe`
    update subscriptions set ended_at = ${sql.timestamp(subscription.startedAt)}
    where user_id = ${subscription.userId} and ended_at is null
  `);
  return db.one(sql.type(subscriptionRow)`
    insert into subscriptions (user_id, plan_code, plan_version, started_at, expires_at)
    values (
      ${subscription.userId},
      ${subscription.planCode},
      (select max(version) from plan_versions where plan_code = ${subscription.planCode}),
      ${sql.timestamp(subscription.startedAt)},
      ${subscription.expiresAt === null ? null : sql.timestamp(subscription.expiresAt)}
    )
    returning user_id, plan_code, plan_version, started_at, expires_at, ended_at
  `);
}

/** Ends the current subscription (if any) at `at`, leaving the account on the default plan. */
export async function endCurrentSubscription(db: CommonQueryMethods, userId: string, at: Date): Promise<void> {
  await db.query(sql.unsafe`
    update subscriptions set ended_at = ${sql.timestamp(at)} where user_id = ${userId} and ended_at is null
  `);
}

/** Every subscription the user had, newest first. */
export async function findSubscriptionHistory(
  db: CommonQueryMethods,
  userId: string,
): Promise<readonly SubscriptionRecord[]> {
  return db.any(sql.type(subscriptionRow)`
    select user_id, plan_code, plan_version, started_at, expires_at, ended_at
    from subscriptions where user_id = ${userId}
    order by started_at desc, id desc
  `);
}

const subscriptionTotals = z.object({ plan_code: z.string(), accounts: z.bigint(), revenue_cents: z.bigint() });

/**
 * Active subscriptions per plan at `at`, and their monthly revenue from accounts in good
 * standing, each at the price of the version it is pinned to. Plans with none are left out. Suspended accounts are few and indexed, so their
 * revenue is subtracted rather than every subscriber's account being joined.
 */
export async function activeSubscriptionTotals(
  db: CommonQueryMethods,
  at: Date,
): Promise<readonly z.infer<typeof subscriptionTotals>[]> {
  const active = sql.fragment`
    select s.user_id, s.plan_code, v.price_cents from subscriptions s
    join plan_versions v on v.plan_code = s.plan_code and v.version = s.plan_version
    where s.ended_at is null and (s.expires_at is null or s.expires_at > ${sql.timestamp(at)})
  `;
  return db.any(sql.type(subscriptionTotals)`
    with active as (${active}),
    suspended as (
      select active.plan_code, sum(active.price_cents) as revenue_cents
      from accounts a join active on active.user_id = a.user_id
      where a.status = 'suspended'
      group by active.plan_code
    )
    select
      active.plan_code,
      count(*) as accounts,
      (sum(active.price_cents) - coalesce(max(suspended.revenue_cents), 0))::bigint as revenue_cents
    from active
    left join suspended on suspended.plan_code = active.plan_code
    group by active.plan_code
  `);
}

/**
 * Moves the subscriptions of `planCode` in force at `at` from older versions (only `fromVersion`,
 * when given) to its latest, keeping everything else about them; with `dryRun`, moves nothing.
 * Returns the users moved (or who would be) and the latest version.
 */
export async function moveToLatestVersion(
  db: CommonQueryMethods,
  filter: { readonly planCode: string; readonly fromVersion: number | undefined; readonly at: Date; readonly dryRun: boolean },
): Promise<{ readonly userIds: readonly string[]; readonly latest: number }> {
  const latest = await db.oneFirst(sql.type(z.object({ latest: z.number() }))`
    select max(version) as latest from plan_versions where plan_code = ${filter.planCode}
  `);
  const which = sql.fragment`
    plan_code = ${filter.planCode} and ended_at is null
    and (expires_at is null or expires_at > ${sql.timestamp(filter.at)})
    and plan_version < ${latest}
    ${filter.fromVersion === undefined ? sql.fragment`` : sql.fragment`and plan_version = ${filter.fromVersion}`}
  `;
  const userIds = await db.anyFirst(
    sql.type(z.object({ user_id: z.string() }))`${
      filter.dryRun
        ? sql.fragment`select user_id from subscriptions where ${which}`
        : sql.fragment`update subscriptions set plan_version = ${latest} where ${which} returning user_id`
    }`,
  );
  return { userIds, latest };
}
