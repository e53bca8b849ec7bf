import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { RESET_PERIODS, type Plan } from "../domain/catalog.ts";

const planRow = z
  .object({
    code: z.string(),
    display_name: z.string(),
    price_cents: z.bigint(),
    currency: z.string(),
    rate_limit_multiplier: z.number(),
    visibility: z.enum(["public", "hidden"]),
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
      displayName: row.display_name,
      priceCents: row.price_cents,
      currency: row.currency,
      rateLimitMultiplier: row.rate_limit_multiplier,
      visibility: row.visibility,
      features: row.features,
      quotas: row.quotas.map((quota) => ({
        metric: quota.metric,
        limit: quota.limit === null ? null : BigInt(quota.limit),
        resetPeriod: quota.reset_period,
      })),
    }),
  );

/** Every plan with its features and quotas, in one round trip. */
export async function findAllPlans(db: CommonQueryMethods): Promise<readonly Plan[]> {
  return db.any(sql.type(planRow)`
    select
      p.code,
      p.display_name,
      p.price_cents,
      p.currency,
      p.rate_limit_multiplier,
      p.visibility,
      coalesce(
        (select json_object_agg(f.feature, f.enabled) from plan_features f where f.plan_code = p.code),
        '{}'
      ) as features,
      coalesce(
        (
          select json_agg(
            json_build_object('metric', q.metric_code, 'limit', q.quota_limit::text, 'reset_period', m.reset_period)
            order by q.metric_code
          )
          from plan_quotas q join metrics m on m.code = q.metric_code
          where q.plan_code = p.code
        ),
        '[]'
      ) as quotas
    from plans p
    order by p.price_cents, p.code
  `);
}

export type PlanAttributes = Pick<
  Plan,
  "code" | "displayName" | "priceCents" | "currency" | "rateLimitMultiplier" | "visibility"
>;

/** Inserts or updates a plan's own columns; writes nothing when they are already as given. */
export async function upsertPlan(db: CommonQueryMethods, plan: PlanAttributes): Promise<void> {
  await db.query(sql.unsafe`
    insert into plans (code, display_name, price_cents, currency, rate_limit_multiplier, visibility)
    values (${plan.code}, ${plan.displayName}, ${plan.priceCents}, ${plan.currency}, ${plan.rateLimitMultiplier}, ${plan.visibility})
    on conflict (code) do update
      set display_name = excluded.display_name,
          price_cents = excluded.price_cents,
          currency = excluded.currency,
          rate_limit_multiplier = excluded.rate_limit_multiplier,
          visibility = excluded.visibility
      where (plans.display_name, plans.price_cents, plans.currency, plans.rate_limit_multiplier, plans.visibility)
        is distinct from
        (excluded.display_name, excluded.price_cents, excluded.currency, excluded.rate_limit_multiplier, excluded.visibility)
  `);
}
