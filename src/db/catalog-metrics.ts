import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { alertThresholdsOf, DEFAULT_ALERT_THRESHOLDS, RESET_PERIODS, sameThresholds, type Metric } from "../domain/catalog.ts";

const metricRow = z
  .object({
    code: z.string(),
    reset_period: z.enum(RESET_PERIODS),
    reset_anchor: z.enum(["calendar", "subscription"]),
    description: z.string(),
    alert_thresholds: z.array(z.number()),
  })
  .transform((row): Metric => ({
    code: row.code,
    resetPeriod: row.reset_period,
    description: row.description,
    ...(row.reset_anchor === "subscription" ? { resetAnchor: row.reset_anchor } : {}),
    ...(sameThresholds(row.alert_thresholds, DEFAULT_ALERT_THRESHOLDS) ? {} : { alertThresholds: row.alert_thresholds }),
  }));

/** The metrics the catalog lists now (not archived). */
export async function findAllMetrics(db: CommonQueryMethods): Promise<readonly Metric[]> {
  return db.any(sql.type(metricRow)`
    select code, reset_period, reset_anchor, description, alert_thresholds from metrics where archived_at is null order by code
  `);
}

/** Inserts or updates a metric, listed again if it was archived; writes nothing when it is already as given. */
export async function upsertMetric(db: CommonQueryMethods, metric: Metric): Promise<void> {
  await db.query(sql.unsafe`
    insert into metrics (code, reset_period, reset_anchor, description, alert_thresholds)
    values (${metric.code}, ${metric.resetPeriod}, ${metric.resetAnchor ?? "calendar"}, ${metric.description}, ${sql.array(alertThresholdsOf(metric), "int4")})
    on conflict (code) do update
      set reset_period = excluded.reset_period, reset_anchor = excluded.reset_anchor, description = excluded.description,
          alert_thresholds = excluded.alert_thresholds, archived_at = null
      where (metrics.reset_period, metrics.reset_anchor, metrics.description, metrics.alert_thresholds, metrics.archived_at)
        is distinct from (excluded.reset_period, excluded.reset_anchor, excluded.description, excluded.alert_thresholds, null)
  `);
}

/** Archives the listed metrics other than `kept`: their usage rows stay, the catalog no longer has them. */
export async function archiveMetricsOtherThan(db: CommonQueryMethods, kept: readonly string[], at: Date): Promise<void> {
  await db.query(sql.unsafe`
    update metrics set archived_at = ${sql.timestamp(at)}
    where archived_at is null and code <> all(${sql.array(kept, "text")})
  `);
}

/** Of `codes`, the metrics some usage has been counted on. */
export async function metricsWithUsage(db: CommonQueryMethods, codes: readonly string[]): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ code: z.string() }))`
    select m.code from metrics m
    where m.code = any(${sql.array(codes, "text")})
      and exists (select 1 from usage_counters u where u.metric_code = m.code)
    order by m.code
  `);
}

/** Of `codes`, the metrics that a plan version a current subscription is pinned to limits. */
export async function metricsInUse(db: CommonQueryMethods, codes: readonly string[]): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ metric_code: z.string() }))`
    select distinct q.metric_code from plan_quotas q
    join subscriptions s on s.plan_code = q.plan_code and s.plan_version = q.plan_version and s.ended_at is null
    where q.metric_code = any(${sql.array(codes, "text")})
    order by q.metric_code
  `);
}
