/**
 * A reference model of the entitlement rules, written independently of src/: periods from ISO
 * date strings, limits from the table of the system we replace, plain arithmetic. Tests compare
 * the service against it.
 */
export type ModelPlan = "free" | "pro" | "enterprise";
export type ModelMetric = "jobs" | "api_calls" | "storage_mb" | "compute_minutes";

const LIMITS: Record<ModelPlan, Record<ModelMetric, bigint | null>> = {
  free: { jobs: 10n, api_calls: 100n, storage_mb: 100n, compute_minutes: null },
  pro: { jobs: 500n, api_calls: 10_000n, storage_mb: 10_240n, compute_minutes: null },
  enterprise: { jobs: null, api_calls: null, storage_mb: null, compute_minutes: null },
};

const UNLIMITED_CEILING = 2n ** 53n - 1n;

export const METRICS: readonly ModelMetric[] = ["api_calls", "compute_minutes", "jobs", "storage_mb"];

export function isGaugeMetric(metric: ModelMetric): boolean {
  return metric === "storage_mb";
}

/** The label of the period `at` falls in: "2026-03-15" per day, "2026-03" per month. */
export function periodLabel(metric: ModelMetric, at: Date): string {
  if (isGaugeMetric(metric)) return "always";
  return calendarLabel(metric === "api_calls" ? "day" : "month", at);
}

const WEEKDAYS_FROM_MONDAY = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/**
 * The label of the UTC calendar period `at` falls in, from its ISO date string: "2026-03-15" per
 * day, "2026-03" per month, "2026" per year, and per week the date of its Monday, found by
 * stepping back whole days (86 400 000 ms: UTC has no daylight saving) from the weekday's name.
 */
export function calendarLabel(reset: "day" | "week" | "month" | "year", at: Date): string {
  const iso = at.toISOString();
  if (reset === "day") return iso.slice(0, 10);
  if (reset === "month") return iso.slice(0, 7);
  if (reset === "year") return iso.slice(0, 4);
  const weekday = at.toUTCString().slice(0, 3);
  return new Date(at.getTime() - WEEKDAYS_FROM_MONDAY.indexOf(weekday) * 86_400_000).toISOString().slice(0, 10);
}

export class UsageModel {
  plan: ModelPlan = "free";
  expiresAt: number | undefined;
  suspended = false;
  readonly usage = new Map<string, bigint>();

  currentPlan(at: Date): ModelPlan {
    return this.expiresAt !== undefined && at.getTime() >= this.expiresAt ? "free" : this.plan;
  }

  limit(metric: ModelMetric, at: Date): bigint | null {
    return LIMITS[this.currentPlan(at)][metric];
  }

  used(metric: ModelMetric, at: Date): bigint {
    return this.usage.get(`${metric}@${periodLabel(metric, at)}`) ?? 0n;
  }

  allows(metric: ModelMetric, amount: bigint, at: Date): boolean {
    if (this.suspended) return false;
    if (amount <= 0n) return true;
    const limit = this.limit(metric, at) ?? UNLIMITED_CEILING;
    return this.used(metric, at) + amount <= limit;
  }

  /** Applies an increment; returns the new amount, or undefined when it is refused. */
  increment(metric: ModelMetric, amount: bigint, at: Date): bigint | undefined {
    if (!this.allows(metric, amount, at)) return undefined;
    const next = this.used(metric, at) + amount;
    const stored = next < 0n ? 0n : next;
    this.usage.set(`${metric}@${periodLabel(metric, at)}`, stored);
    return stored;
  }

  changePlan(plan: ModelPlan, days: number | undefined, at: Date): void {
    this.plan = plan;
    this.expiresAt = days === undefined ? undefined : at.getTime() + days * 86_400_000;
  }
}
