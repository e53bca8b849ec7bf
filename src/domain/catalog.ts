/**
 * How often a metric starts again from zero: UTC calendar periods (a week starts on Monday, as
 * ISO 8601 has it), or never for a gauge.
 */
export type ResetPeriod = "day" | "week" | "month" | "year" | "never";

/** Every reset period, in order of length. */
export const RESET_PERIODS: readonly ResetPeriod[] = ["day", "week", "month", "year", "never"];

/**
 * Where a metric's periods start: UTC calendar periods, or (monthly and yearly counters only)
 * each subscriber's billing periods, anchored on its subscription's start.
 */
export type ResetAnchor = "calendar" | "subscription";

export type Metric = {
  readonly code: string;
  readonly resetPeriod: ResetPeriod;
  readonly description: string;
  /** Absent: "calendar". */
  readonly resetAnchor?: ResetAnchor;
  /** Percentages of the period's allowance whose crossing is announced (usage.threshold_crossed); absent: DEFAULT_ALERT_THRESHOLDS. */
  readonly alertThresholds?: readonly number[];
};

/** The thresholds of a metric that names none: 80% and 100% of the allowance. */
export const DEFAULT_ALERT_THRESHOLDS: readonly number[] = Object.freeze([80, 100]);

/** Whether two lists of thresholds are the same. */
export function sameThresholds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((threshold, index) => threshold === b[index]);
}

/** A metric's alert thresholds, ascending. */
export function alertThresholdsOf(metric: Metric): readonly number[] {
  return metric.alertThresholds ?? DEFAULT_ALERT_THRESHOLDS;
}

export type Quota = {
  readonly metric: string;
  /** Most units per period (for a gauge: at any time); null is unlimited. */
  readonly limit: bigint | null;
  readonly resetPeriod: ResetPeriod;
};

/** What a plan offers, at one version: everything a change to which publishes a new version. */
export type PlanTerms = {
  readonly code: string;
  readonly displayName: string;
  readonly priceCents: bigint;
  readonly currency: string;
  /** What `priceCents` pays for. */
  readonly interval: BillingInterval;
  readonly rateLimitMultiplier: number;
  /** Hidden plans can be assigned but are never listed publicly. */
  readonly visibility: PlanVisibility;
  /** Days of trial a new subscriber gets (null: none). */
  readonly trialDays: number | null;
  readonly features: Readonly<Record<string, boolean>>;
  /** Ordered by metric code. */
  readonly quotas: readonly Quota[];
};

/** A plan at one of its versions (1, 2, ...); versions never change once published. */
export type Plan = PlanTerms & { readonly version: number };

/**
 * Whether two sets of terms are the same offer. Features are compared by those turned on, so a
 * feature added to the catalog (off everywhere) publishes no new version of any plan.
 */
export function sameTerms(a: PlanTerms, b: PlanTerms): boolean {
  const quotas = (terms: PlanTerms) => JSON.stringify(terms.quotas.map((quota) => [quota.metric, quota.limit?.toString() ?? null]));
  return (
    a.code === b.code &&
    a.displayName === b.displayName &&
    a.priceCents === b.priceCents &&
    a.currency === b.currency &&
    a.interval === b.interval &&
    a.rateLimitMultiplier === b.rateLimitMultiplier &&
    a.visibility === b.visibility &&
    a.trialDays === b.trialDays &&
    definitionOf(a).features.join() === definitionOf(b).features.join() &&
    quotas(a) === quotas(b)
  );
}

/** How often a plan's price is paid. */
export type BillingInterval = "month" | "year";

/** Whether a plan is listed publicly ("public") or only assignable ("hidden"). */
export type PlanVisibility = "public" | "hidden";

/** A feature a plan can turn on. */
export type Feature = { readonly code: string; readonly description: string };

/** A plan as a catalog file declares it: its terms, with features and quotas as a file lists them. */
export type PlanDefinition = Omit<PlanTerms, "features" | "quotas"> & {
  /** The features it turns on; every other one is off. */
  readonly features: readonly string[];
  /** Limits by metric (null: unlimited); a metric not listed has limit 0. */
  readonly quotas: readonly { readonly metric: string; readonly limit: bigint | null }[];
};

/** A whole catalog as a file declares it (app/catalog-file.ts reads and validates one). */
export type CatalogDefinition = {
  /** Users with no subscription are on this plan. */
  readonly defaultPlan: string;
  readonly metrics: readonly Metric[];
  readonly features: readonly Feature[];
  readonly plans: readonly PlanDefinition[];
};

/** The terms of the plans a definition declares: every feature on or off, quotas by metric code. */
export function plansOf(definition: CatalogDefinition): PlanTerms[] {
  const resetPeriods = new Map(definition.metrics.map((metric) => [metric.code, metric.resetPeriod]));
  return definition.plans.map(({ features, quotas, ...terms }) => ({
    ...terms,
    features: Object.fromEntries(definition.features.map((feature) => [feature.code, features.includes(feature.code)])),
    quotas: quotas
      .map((quota) => ({ metric: quota.metric, limit: quota.limit, resetPeriod: resetPeriods.get(quota.metric)! }))
      .sort((a, b) => a.metric.localeCompare(b.metric)),
  }));
}

/** A plan's terms as a catalog file declares them: the features turned on, the quotas' limits. */
export function definitionOf({ features, quotas, ...terms }: PlanTerms & { readonly version?: number }): PlanDefinition {
  const { version: _version, ...plan } = terms;
  return {
    ...plan,
    features: Object.keys(features).filter((feature) => features[feature]).sort(),
    quotas: quotas.map((quota) => ({ metric: quota.metric, limit: quota.limit })),
  };
}


export function isGauge(metric: Metric): boolean {
  return metric.resetPeriod === "never";
}

/**
 * The limit a plan sets on a metric. A metric the plan does not list is not granted at all
 * (limit 0): failing closed costs a support ticket, failing open costs money.
 */
export function quotaLimit(plan: Plan, metricCode: string): bigint | null {
  const quota = plan.quotas.find((candidate) => candidate.metric === metricCode);
  return quota === undefined ? 0n : quota.limit;
}

/** Which plan users without a subscription are on, and which plans are no longer offered. */
export type CatalogSettings = {
  /** The plan of every user without an active subscription ("free" unless a catalog says otherwise). */
  readonly defaultPlan: string;
  /** Plans a later catalog no longer lists: kept for their subscribers, never offered. */
  readonly archivedPlans: ReadonlySet<string>;
  /** The features the catalog lists now; absent: every feature a plan names. */
  readonly features?: readonly string[];
};

/** The plans (every version) and metrics the service knows, as read from the database. */
export class Catalog {
  /** Every plan offered, at its latest version, cheapest first, hidden ones included. */
  readonly plans: readonly Plan[];
  /** The plans listed publicly, cheapest first. */
  readonly publicPlans: readonly Plan[];
  readonly metrics: readonly Metric[];
  /** The plan of every user without an active subscription, at its latest version. */
  readonly defaultPlan: Plan;
  readonly #archived: ReadonlySet<string>;
  readonly #plansByCode: ReadonlyMap<string, Plan>;
  /** Each plan's versions, indexed by version number (a lookup on every call: no key to build). */
  readonly #versions: ReadonlyMap<string, readonly Plan[]>;
  readonly #metricsByCode: ReadonlyMap<string, Metric>;
  readonly #features: ReadonlySet<string>;

  /** `plans`: every version of every plan. */
  constructor(plans: readonly Plan[], metrics: readonly Metric[], settings: CatalogSettings = { defaultPlan: "free", archivedPlans: new Set() }) {
    const latest = latestVersions(plans);
    this.#archived = settings.archivedPlans;
    this.plans = [...latest.values()].filter((plan) => !this.#archived.has(plan.code)).sort(cheapestFirst);
    this.publicPlans = this.plans.filter((plan) => plan.visibility === "public");
    this.metrics = [...metrics].sort((a, b) => a.code.localeCompare(b.code));
    this.#plansByCode = latest;
    const versions = new Map<string, Plan[]>();
    for (const plan of plans) {
      const ofPlan = versions.get(plan.code) ?? [];
      ofPlan[plan.version] = plan;
      versions.set(plan.code, ofPlan);
    }
    this.#versions = versions;
    this.#metricsByCode = new Map(metrics.map((metric) => [metric.code, metric]));
    this.#features = new Set(settings.features ?? plans.flatMap((plan) => Object.keys(plan.features)));
    const defaultPlan = latest.get(settings.defaultPlan);
    if (defaultPlan === undefined) {
      throw new Error(`the catalog has no "${settings.defaultPlan}" plan`);
    }
    this.defaultPlan = defaultPlan;
  }

  /** A plan at its latest version, archived or not. */
  plan(code: string): Plan | undefined {
    return this.#plansByCode.get(code);
  }

  /** Whether a later catalog stopped offering the plan: its subscribers keep it, nobody new gets it. */
  isArchived(code: string): boolean {
    return this.#archived.has(code);
  }

  /** A plan at one of its versions, as a subscription pinned to it sees it. */
  planVersion(code: string, version: number): Plan | undefined {
    return this.#versions.get(code)?.[version];
  }

  metric(code: string): Metric | undefined {
    return this.#metricsByCode.get(code);
  }

  /** Whether the catalog lists the feature now. */
  hasFeature(code: string): boolean {
    return this.#features.has(code);
  }
}

/** Plans by price, cheapest first, then by code: the order every listing of plans uses. */
export function cheapestFirst(a: Plan, b: Plan): number {
  return Number(a.priceCents - b.priceCents) || a.code.localeCompare(b.code);
}

/** Each plan at its latest version, by code. */
export function latestVersions(plans: readonly Plan[]): Map<string, Plan> {
  const latest = new Map<string, Plan>();
  for (const plan of plans) {
    if ((latest.get(plan.code)?.version ?? 0) < plan.version) latest.set(plan.code, plan);
  }
  return latest;
}
