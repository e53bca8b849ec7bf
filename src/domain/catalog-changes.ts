import { alertThresholdsOf, sameThresholds, type CatalogDefinition, type PlanDefinition } from "./catalog.ts";

/**
 * What applying `after` over `before` (the catalog the database holds; undefined when it holds
 * none) changes, one line a change, in the file's own paths: `plans.pro: new version (price_cents
 * 1999 -> 2499)`. Empty when nothing would change.
 */
export function catalogChanges(before: CatalogDefinition | undefined, after: CatalogDefinition): string[] {
  const changes: string[] = [];
  if (before?.defaultPlan !== after.defaultPlan) changes.push(`default_plan: ${before?.defaultPlan ?? "(none)"} -> ${after.defaultPlan}`);
  changes.push(
    ...entryChanges("metrics", before?.metrics ?? [], after.metrics, (was, now) => [
      ...(was.resetPeriod === now.resetPeriod ? [] : [`reset ${was.resetPeriod} -> ${now.resetPeriod}`]),
      ...((was.resetAnchor ?? "calendar") === (now.resetAnchor ?? "calendar")
        ? []
        : [`reset_anchor ${was.resetAnchor ?? "calendar"} -> ${now.resetAnchor ?? "calendar"}`]),
      ...(was.description === now.description ? [] : ["description"]),
      ...(sameThresholds(alertThresholdsOf(was), alertThresholdsOf(now)) ? [] : [`alert_thresholds [${alertThresholdsOf(was).join(", ")}] -> [${alertThresholdsOf(now).join(", ")}]`]),
    ]),
    ...entryChanges("features", before?.features ?? [], after.features, (was, now) => (was.description === now.description ? [] : ["description"])),
  );
  const previous = new Map((before?.plans ?? []).map((plan) => [plan.code, plan]));
  for (const plan of after.plans) {
    const was = previous.get(plan.code);
    if (was === undefined) {
      changes.push(`plans.${plan.code}: added`);
      continue;
    }
    const differences = planDifferences(was, plan);
    if (differences.length > 0) changes.push(`plans.${plan.code}: new version (${differences.join("; ")})`);
  }
  const kept = new Set(after.plans.map((plan) => plan.code));
  for (const plan of before?.plans ?? []) {
    if (!kept.has(plan.code)) changes.push(`plans.${plan.code}: archived (its subscribers keep it)`);
  }
  return changes;
}

/** Added, changed (what `differences` names) and archived entries of a catalog section. */
function entryChanges<T extends { readonly code: string }>(
  section: string,
  before: readonly T[],
  after: readonly T[],
  differences: (was: T, now: T) => string[],
): string[] {
  const previous = new Map(before.map((entry) => [entry.code, entry]));
  const kept = new Set(after.map((entry) => entry.code));
  return [
    ...after.flatMap((entry) => {
      const was = previous.get(entry.code);
      if (was === undefined) return [`${section}.${entry.code}: added`];
      const changed = differences(was, entry);
      return changed.length === 0 ? [] : [`${section}.${entry.code}: ${changed.join("; ")}`];
    }),
    ...before.filter((entry) => !kept.has(entry.code)).map((entry) => `${section}.${entry.code}: archived`),
  ];
}

const TERMS = [
  ["display_name", "displayName"],
  ["price_cents", "priceCents"],
  ["currency", "currency"],
  ["interval", "interval"],
  ["rate_limit_multiplier", "rateLimitMultiplier"],
  ["visibility", "visibility"],
  ["trial_days", "trialDays"],
] as const satisfies readonly (readonly [string, keyof PlanDefinition])[];

/** Each term of a plan that differs, as `price_cents 1999 -> 2499`. */
function planDifferences(was: PlanDefinition, now: PlanDefinition): string[] {
  const differences: string[] = TERMS.filter(([, key]) => was[key] !== now[key]).map(
    ([name, key]) => `${name} ${String(was[key] ?? "(none)")} -> ${String(now[key] ?? "(none)")}`,
  );
  const wasOn = new Set(was.features);
  const nowOn = new Set(now.features);
  const features = [...now.features.filter((feature) => !wasOn.has(feature)).map((feature) => `+${feature}`), ...was.features.filter((feature) => !nowOn.has(feature)).map((feature) => `-${feature}`)];
  if (features.length > 0) differences.push(`features ${features.join(" ")}`);
  const limits = (plan: PlanDefinition) => new Map(plan.quotas.map((quota) => [quota.metric, quota.limit?.toString() ?? "unlimited"]));
  const [wasLimits, nowLimits] = [limits(was), limits(now)];
  for (const metric of new Set([...wasLimits.keys(), ...nowLimits.keys()])) {
    const [from, to] = [wasLimits.get(metric) ?? "0 (not listed)", nowLimits.get(metric) ?? "0 (not listed)"];
    if (from !== to) differences.push(`quotas.${metric} ${from} -> ${to}`);
  }
  return differences;
}
