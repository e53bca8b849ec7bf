import { sql, type CommonQueryMethods } from "slonik";
import type { Quota } from "../domain/catalog.ts";

/**
 * Makes a plan's quotas exactly `quotas`: upserts those given and deletes the others, writing
 * nothing that is already so.
 */
export async function replacePlanQuotas(
  db: CommonQueryMethods,
  planCode: string,
  quotas: readonly Pick<Quota, "metric" | "limit">[],
): Promise<void> {
  const metrics = quotas.map((quota) => quota.metric);
  await db.query(sql.unsafe`
    delete from plan_quotas
    where plan_code = ${planCode} and metric_code <> all(${sql.array(metrics, "text")})
  `);
  for (const quota of quotas) {
    await db.query(sql.unsafe`
      insert into plan_quotas (plan_code, metric_code, quota_limit)
      values (${planCode}, ${quota.metric}, ${quota.limit})
      on conflict (plan_code, metric_code) do update
        set quota_limit = excluded.quota_limit
        where plan_quotas.quota_limit is distinct from excluded.quota_limit
    `);
  }
}
