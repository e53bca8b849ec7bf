/** How often a metric starts again from zero: UTC calendar periods, or never for a gauge. */
export type ResetPeriod = "day" | "month" | "never";

export type Metric = {
  readonly code: string;
  readonly resetPeriod: ResetPeriod;
  readonly description: string;
};

export type Quota = {
  readonly metric: string;
  /** Most units per period (for a gauge: at any time); null is unlimited. */
  readonly limit: bigint | null;
  readonly resetPeriod: ResetPeriod;
};

export type Plan = {
  readonly code: string;
  readonly displayName: string;
  readonly priceCents: bigint;
  readonly currency: string;
  readonly rateLimitMultiplier: number;
  readonly features: Readonly<Record<string, boolean>>;
  /** Ordered by metric code. */
  readonly quotas: readonly Quota[];
};

/** The plan of every user without an active subscription. */
export const FREE_PLAN_CODE = "free";

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

/** The plans and metrics the service knows, as read from the database. */
export class Catalog {
  readonly plans: readonly Plan[];
  readonly metrics: readonly Metric[];
  readonly freePlan: Plan;
  readonly #plansByCode: ReadonlyMap<string, Plan>;
  readonly #metricsByCode: ReadonlyMap<string, Metric>;

  constructor(plans: readonly Plan[], metrics: readonly Metric[]) {
    this.plans = [...plans].sort(
      (a, b) => Number(a.priceCents - b.priceCents) || a.code.localeCompare(b.code),
    );
    this.metrics = [...metrics].sort((a, b) => a.code.localeCompare(b.code));
    this.#plansByCode = new Map(plans.map((plan) => [plan.code, plan]));
    this.#metricsByCode = new Map(metrics.map((metric) => [metric.code, metric]));
    const freePlan = this.#plansByCode.get(FREE_PLAN_CODE);
    if (freePlan === undefined) {
      throw new Error(`the catalog has no "${FREE_PLAN_CODE}" plan`);
    }
    this.freePlan = freePlan;
  }

  plan(code: string): Plan | undefined {
    return this.#plansByCode.get(code);
  }

  metric(code: string): Metric | undefined {
    return this.#metricsByCode.get(code);
  }
}
