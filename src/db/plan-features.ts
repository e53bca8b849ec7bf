import { sql, type CommonQueryMethods } from "slonik";

/**
 * Makes a plan's feature flags exactly `features`: upserts those given and deletes the others,
 * writing nothing that is already so.
 */
export async function replacePlanFeatures(
  db: CommonQueryMethods,
  planCode: string,
  features: Readonly<Record<string, boolean>>,
): Promise<void> {
  const names = Object.keys(features);
  await db.query(sql.unsafe`
    delete from plan_features
    where plan_code = ${planCode} and feature <> all(${sql.array(names, "text")})
  `);
  for (const [feature, enabled] of Object.entries(features)) {
    await db.query(sql.unsafe`
      insert into plan_features (plan_code, feature, enabled)
      values (${planCode}, ${feature}, ${enabled})
      on conflict (plan_code, feature) do update
        set enabled = excluded.enabled
        where plan_features.enabled <> excluded.enabled
    `);
  }
}
