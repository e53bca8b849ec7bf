import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { RESET_PERIODS, type Metric } from "../domain/catalog.ts";

const metricRow = z
  .object({
    code: z.string(),
    reset_period: z.enum(RESET_PERIODS),
    description: z.string(),
  })
  .transform((row): Metric => ({
    code: row.code,
    resetPeriod: row.reset_period,
    description: row.description,
  }));

export async function findAllMetrics(db: CommonQueryMethods): Promise<readonly Metric[]> {
  return db.any(sql.type(metricRow)`
    select code, reset_period, description from metrics order by code
  `);
}

/** Inserts or updates a metric; writes nothing when it is already as given. */
export async function upsertMetric(db: CommonQueryMethods, metric: Metric): Promise<void> {
  await db.query(sql.unsafe`
    insert into metrics (code, reset_period, description)
    values (${metric.code}, ${metric.resetPeriod}, ${metric.description})
    on conflict (code) do update
      set reset_period = excluded.reset_period, description = excluded.description
      where (metrics.reset_period, metrics.description)
        is distinct from (excluded.reset_period, excluded.description)
  `);
}
