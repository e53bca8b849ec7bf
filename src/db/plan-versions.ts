import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { RESET_PERIODS, type Plan, type PlanTerms } from "../domain/catalog.ts";
import { timestampColumn } from "./columns.ts";

const planRow = z
  .object({
    code: z.string(),
    version: z.number(),
    display_name: z.string(),
    price_cents: z.bigint(),
    currency: z.string(),
    billing_interval: z.enum(["month", "year"]),
    rate_limit_multiplier: z.number(),
    visibility: z.enum(["public", "hidden"]),
    trial_days: z.number().nullable(),
    features: z.record(z.string(), z.boolean()),
    quotas: z.array(
      z.object({
        metric: z.string(),
        // Sent as text: JSON numbers would lose bigint precision.
        limit: z.string().nullable(),
        reset_period: z.enum(RESET_PERIODS),
      }),
    ),
  })
  .transform(
    (row): Plan => ({
      code: row.code,
      version: row.version,
      displayName: row.display_name,
      priceCents: row.price_cents,
      currency: row.currency,
      interval: row.billing_interval,
      rateLimitMultiplier: row.rate_limit_multiplier,
      visibility: row.visibility,
      trialDays: row.trial_days,
      features: row.features,
      quotas: row.quotas.map((quota) => ({
        metric: quota.metric,
        limit: quota.limit === null ? null : BigInt(quota.limit),
        resetPeriod: quota.reset_period,
      })),
    }),
  );

/** Every version of every plan with its features and quotas, in one round trip. */
export async function findAllPlanVersions(db: CommonQueryMethods): Promise<readonly Plan[]> {
  return db.any(sql.type(planRow)`
    select
      v.plan_code as code,
      v.version,
      v.display_name,
      v.price_cents,
      v.currency,
      v.billing_interval,
      v.rate_limit_multiplier,
      v.visibility,
      v.trial_days,
      coalesce(
        (
          select json_object_agg(f.feature, f.enabled) from plan_features f
          where f.plan_code = v.plan_code and f.plan_version = v.version
        ),
        '{}'
      ) as features,
      coalesce(
        (
          select json_agg(
            json_build_object('metric', q.metric_code, 'limit', q.quota_limit::text, 'reset_period', m.reset_period)
            order by q.metric_code
          )
          from plan_quotas q join metrics m on m.code = q.metric_code
          where q.plan_code = v.plan_code and q.plan_version = v.version
        ),
        '[]'
      ) as quotas
    from plan_versions v
    order by v.plan_code, v.version
  `);
}

/** Publishes `terms` as the plan's version `version`, with its features and quotas. */
export async function insertPlanVersion(db: CommonQueryMethods, terms: PlanTerms, version: number, publishedAt: Date): Promise<void> {
  await db.query(sql.unsafe`
    insert into plan_versions (
      plan_code, version, display_name, price_cents, currency, billing_interval, rate_limit_multiplier, visibility, trial_days, published_at
    )
    values (
      ${terms.code}, ${version}, ${terms.displayName}, ${terms.priceCents}, ${terms.currency}, ${terms.interval},
      ${terms.rateLimitMultiplier}, ${terms.visibility}, ${terms.trialDays}, ${sql.timestamp(publishedAt)}
    )
  `);
  const features = Object.entries(terms.features);
  await db.query(sql.unsafe`
    insert into plan_features (plan_code, plan_version, feature, enabled)
    select ${terms.code}, ${version}, feature, enabled
    from unnest(${sql.array(features.map(([feature]) => feature), "text")}::text[], ${sql.array(features.map(([, enabled]) => enabled), "bool")}::bool[])
      as given (feature, enabled)
  `);
  await db.query(sql.unsafe`
    insert into plan_quotas (plan_code, plan_version, metric_code, quota_limit)
    select ${terms.code}, ${version}, metric, quota_limit
    from unnest(
      ${sql.array(terms.quotas.map((quota) => quota.metric), "text")}::text[],
      ${sql.array(terms.quotas.map((quota) => quota.limit?.toString() ?? null), "int8")}::int8[]
    ) as given (metric, quota_limit)
  `);
}

const versionSummary = z.object({ version: z.number(), published_at: timestampColumn, active_subscribers: z.bigint() });

/** Each version of a plan, oldest first: when it was published and how many subscriptions in force at `at` are on it. */
export async function planVersionSummaries(
  db: CommonQueryMethods,
  planCode: string,
  at: Date,
): Promise<readonly { version: number; publishedAt: Date; activeSubscribers: bigint }[]> {
  const rows = await db.any(sql.type(versionSummary)`
    select v.version, v.published_at, count(s.id) as active_subscribers
    from plan_versions v
    left join subscriptions s
      on s.plan_code = v.plan_code and s.plan_version = v.version and s.ended_at is null
      and (s.expires_at is null or s.expires_at > ${sql.timestamp(at)})
    where v.plan_code = ${planCode}
    group by v.version, v.published_at
    order by v.version
  `);
  return rows.map((row) => ({ version: row.version, publishedAt: row.published_at, activeSubscribers: row.active_subscribers }));
}
