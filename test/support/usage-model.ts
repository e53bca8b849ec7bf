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

const DAY_MS = 86_400_000;

/** A grant as the model keeps it: what it still holds, until when (undefined: no end). */
type ModelGrant = { remaining: bigint; expiresAt: number | undefined; order: number };

export class UsageModel {
  plan: ModelPlan = "free";
  expiresAt: number | undefined;
  suspended = false;
  readonly usage = new Map<string, bigint>();
  /** Limits set for the account, by metric (null: unlimited), each until its expiry. */
  readonly overrides = new Map<ModelMetric, { limit: bigint | null; expiresAt: number | undefined }>();
  readonly grants = new Map<ModelMetric, ModelGrant[]>();
  trial: { plan: ModelPlan; endsAt: number } | undefined;
  readonly tried = new Set<ModelPlan>();
  scheduled: { plan: ModelPlan; at: number } | undefined;
  #grantsMade = 0;

  /**
   * A scheduled change that came due is from then on the account's subscription, and ends a
   * trial that was running: the same whether or not anything wrote it down.
   */
  #settle(at: Date): void {
    const due = this.scheduled;
    if (due === undefined || at.getTime() < due.at) return;
    this.plan = due.plan;
    this.expiresAt = undefined;
    if (this.trial !== undefined && this.trial.endsAt > due.at) this.trial = undefined;
    this.scheduled = undefined;
  }

  currentPlan(at: Date): ModelPlan {
    this.#settle(at);
    if (this.trial !== undefined && at.getTime() < this.trial.endsAt) return this.trial.plan;
    return this.expiresAt !== undefined && at.getTime() >= this.expiresAt ? "free" : this.plan;
  }

  limit(metric: ModelMetric, at: Date): bigint | null {
    const override = this.overrides.get(metric);
    if (override !== undefined && (override.expiresAt === undefined || at.getTime() < override.expiresAt)) return override.limit;
    return LIMITS[this.currentPlan(at)][metric];
  }

  used(metric: ModelMetric, at: Date): bigint {
    return this.usage.get(`${metric}@${periodLabel(metric, at)}`) ?? 0n;
  }

  #activeGrants(metric: ModelMetric, at: Date): ModelGrant[] {
    return (this.grants.get(metric) ?? []).filter((grant) => grant.remaining > 0n && (grant.expiresAt === undefined || at.getTime() < grant.expiresAt));
  }

  /** What the metric's grants hold at `at`; 0 under no limit, where grants are not drawn on. */
  grantRemaining(metric: ModelMetric, at: Date): bigint {
    if (this.limit(metric, at) === null) return 0n;
    return this.#activeGrants(metric, at).reduce((sum, grant) => sum + grant.remaining, 0n);
  }

  /** What is left: the allowance (never below 0) plus grants; null under no limit. */
  remaining(metric: ModelMetric, at: Date): bigint | null {
    const limit = this.limit(metric, at);
    if (limit === null) return null;
    const used = this.used(metric, at);
    return (used >= limit ? 0n : limit - used) + this.grantRemaining(metric, at);
  }

  allows(metric: ModelMetric, amount: bigint, at: Date): boolean {
    if (this.suspended) return false;
    if (amount <= 0n) return true;
    const limit = this.limit(metric, at);
    const used = this.used(metric, at);
    if (limit === null) return used + amount <= UNLIMITED_CEILING;
    return used + amount <= limit || amount - (used >= limit ? 0n : limit - used) <= this.grantRemaining(metric, at);
  }

  /** Applies an increment; returns the new amount, or undefined when it is refused. */
  increment(metric: ModelMetric, amount: bigint, at: Date): bigint | undefined {
    if (!this.allows(metric, amount, at)) return undefined;
    const limit = this.limit(metric, at);
    const used = this.used(metric, at);
    if (limit !== null && amount > 0n && used + amount > limit) {
      // Earliest expiry first, no expiry last; the oldest first among equals.
      let need = amount - (used >= limit ? 0n : limit - used);
      const byExpiry = this.#activeGrants(metric, at).sort(
        (a, b) => (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity) || a.order - b.order,
      );
      for (const grant of byExpiry) {
        const take = grant.remaining < need ? grant.remaining : need;
        grant.remaining -= take;
        need -= take;
      }
    }
    const next = used + amount;
    const stored = next < 0n ? 0n : next;
    this.usage.set(`${metric}@${periodLabel(metric, at)}`, stored);
    return stored;
  }

  /** UpgradePlan: a trial of the plan converts, any other ends; a pending change is dropped. */
  changePlan(plan: ModelPlan, days: number | undefined, at: Date): void {
    this.#settle(at);
    this.trial = undefined;
    this.scheduled = undefined;
    this.plan = plan;
    this.expiresAt = days === undefined ? undefined : at.getTime() + days * DAY_MS;
  }

  setQuotaOverride(metric: ModelMetric, limit: bigint | null, days: number | undefined, at: Date): void {
    this.overrides.set(metric, { limit, expiresAt: days === undefined ? undefined : at.getTime() + days * DAY_MS });
  }

  grant(metric: ModelMetric, amount: bigint, days: number | undefined, at: Date): void {
    const grants = this.grants.get(metric) ?? [];
    grants.push({ remaining: amount, expiresAt: days === undefined ? undefined : at.getTime() + days * DAY_MS, order: this.#grantsMade++ });
    this.grants.set(metric, grants);
  }

  /** StartTrial: false when refused (a second trial of the plan, or the plan subscribed to). */
  startTrial(plan: ModelPlan, days: number, at: Date): boolean {
    this.#settle(at);
    const trialRunning = this.trial !== undefined && at.getTime() < this.trial.endsAt;
    const subscribed = !trialRunning && this.plan === plan && !(this.expiresAt !== undefined && at.getTime() >= this.expiresAt);
    if (this.tried.has(plan) || subscribed) return false;
    this.tried.add(plan);
    this.trial = { plan, endsAt: at.getTime() + days * DAY_MS };
    return true;
  }

  /** ConsumeUsage: every item or none; returns the amounts after, or undefined when refused. */
  consume(items: readonly { metric: ModelMetric; amount: bigint }[], at: Date): bigint[] | undefined {
    if (!items.every((item) => this.allows(item.metric, item.amount, at))) return undefined;
    return items.map((item) => this.increment(item.metric, item.amount, at)!);
  }

  /** RefundUsage: false when it is more than the period counts. */
  refund(metric: ModelMetric, amount: bigint, at: Date): boolean {
    const used = this.used(metric, at);
    if (amount > used) return false;
    this.usage.set(`${metric}@${periodLabel(metric, at)}`, used - amount);
    return true;
  }

  /** SetUsage on a gauge: false when it grows past the limit. */
  setLevel(metric: ModelMetric, value: bigint, at: Date): boolean {
    if (this.suspended) return false;
    const limit = this.limit(metric, at) ?? UNLIMITED_CEILING;
    if (value > this.used(metric, at) && value > limit) return false;
    this.usage.set(`${metric}@${periodLabel(metric, at)}`, value);
    return true;
  }

  /** SchedulePlanChange at a time, replacing the pending one. */
  schedule(plan: ModelPlan, days: number, at: Date): void {
    this.#settle(at);
    this.scheduled = { plan, at: at.getTime() + days * DAY_MS };
  }
}
