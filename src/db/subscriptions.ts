import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import type { SubscriptionRecord } from "../domain/subscriptions.ts";

const timestamp = z.number().transform((ms) => new Date(ms));

const subscriptionRow = z
  .object({
    user_id: z.string(),
    plan_code: z.string(),
    started_at: timestamp,
    expires_at: timestamp.nullable(),
    ended_at: timestamp.nullable(),
  })
  .transform(
    (row): SubscriptionRecord => ({
      userId: row.user_id,
      planCode: row.plan_code,
      startedAt: row.started_at,
      expiresAt: row.expires_at,
      endedAt: row.ended_at,
    }),
  );

/** The user's current (not replaced) subscription, which may have expired. */
export async function findCurrentSubscription(
  db: CommonQueryMethods,
  userId: string,
): Promise<SubscriptionRecord | null> {
  return db.maybeOne(sql.type(subscriptionRow)`
    select user_id, plan_code, started_at, expires_at, ended_at
    from subscriptions
    where user_id = ${userId} and ended_at is null
  `);
}

/**
 * Ends the current subscription (if any) and starts a new one. Run it in a transaction that
 * holds the account lock, so the one-current-subscription index is never contended.
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
    insert into subscriptions (user_id, plan_code, started_at, expires_at)
    values (
      ${subscription.userId},
      ${subscription.planCode},
      ${sql.timestamp(subscription.startedAt)},
      ${subscription.expiresAt === null ? null : sql.timestamp(subscription.expiresAt)}
    )
    returning user_id, plan_code, started_at, expires_at, ended_at
  `);
}
