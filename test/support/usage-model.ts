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

/** A reservation: what it holds on which period's row, until when; what a commit left. */
type ModelReservation = {
  items: { metric: ModelMetric; amount: bigint; label: string }[];
  expiresAt: number;
  state: "held" | "committed" | "released";
  actual?: bigint[];
  usedAfter?: bigint[];
};

/** What a commit or release answers: the rows after it, a repeat of the first commit, or a refusal. */
export type ModelSettlement = { kind: "settled" | "repeated"; used: bigint[] } | { kind: "expired" | "refused" };

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
  readonly reservations: ModelReservation[] = [];
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

  /** What held reservations hold on the row of `label` at `at` (an expired one holds nothing). */
  #heldOn(metric: ModelMetric, label: string, at: Date): bigint {
    let held = 0n;
    for (const reservation of this.reservations) {
      if (reservation.state !== "held" || at.getTime() >= reservation.expiresAt) continue;
      for (const item of reservation.items) if (item.metric === metric && item.label === label) held += item.amount;
    }
    return held;
  }

  /** What reservations hold on the metric's current row. */
  reserved(metric: ModelMetric, at: Date): bigint {
    return this.#heldOn(metric, periodLabel(metric, at), at);
  }

  /** What is left: the allowance (never below 0) plus grants, less what is reserved; null under no limit. */
  remaining(metric: ModelMetric, at: Date): bigint | null {
    const limit = this.limit(metric, at);
    if (limit === null) return null;
    const used = this.used(metric, at);
    const free = (used >= limit ? 0n : limit - used) + this.grantRemaining(metric, at) - this.reserved(metric, at);
    return free > 0n ? free : 0n;
  }

  /** Reserved units count as used; past the allowance, grants must cover the rest and what holds claim of them. */
  allows(metric: ModelMetric, amount: bigint, at: Date): boolean {
    if (this.suspended) return false;
    if (amount <= 0n) return true;
    const limit = this.limit(metric, at);
    const used = this.used(metric, at);
    const held = this.reserved(metric, at);
    if (limit === null) return used + held + amount <= UNLIMITED_CEILING;
    return used + held + amount <= limit || amount + held - (used >= limit ? 0n : limit - used) <= this.grantRemaining(metric, at);
  }

  /** Takes `need` from the metric's active grants: earliest expiry first, no expiry last; the oldest first among equals. */
  #draw(metric: ModelMetric, need: bigint, at: Date): void {
    const byExpiry = this.#activeGrants(metric, at).sort((a, b) => (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity) || a.order - b.order);
    for (const grant of byExpiry) {
      const take = grant.remaining < need ? grant.remaining : need;
      grant.remaining -= take;
      need -= take;
    }
  }

  /** Applies an increment; returns the new amount, or undefined when it is refused. */
  increment(metric: ModelMetric, amount: bigint, at: Date): bigint | undefined {
    if (!this.allows(metric, amount, at)) return undefined;
    const limit = this.limit(metric, at);
    const used = this.used(metric, at);
    const held = this.reserved(metric, at);
    if (limit !== null && amount > 0n && used + held + amount > limit) {
      // Holds take the allowance first: grants give what the allowance left after them cannot.
      const allowanceLeft = (used >= limit ? 0n : limit - used) - held;
      this.#draw(metric, amount - (allowanceLeft > 0n ? allowanceLeft : 0n), at);
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

  /** SetUsage on a gauge: false when it grows past the limit (with what reservations hold). */
  setLevel(metric: ModelMetric, value: bigint, at: Date): boolean {
    if (this.suspended) return false;
    const limit = this.limit(metric, at) ?? UNLIMITED_CEILING;
    if (value > this.used(metric, at) && value + this.reserved(metric, at) > limit) return false;
    this.usage.set(`${metric}@${periodLabel(metric, at)}`, value);
    return true;
  }

  /** SchedulePlanChange at a time, replacing the pending one. */
  schedule(plan: ModelPlan, days: number, at: Date): void {
    this.#settle(at);
    this.scheduled = { plan, at: at.getTime() + days * DAY_MS };
  }

  /** ReserveUsage: every item held until `ttlSeconds` from now, or none; returns its index, or undefined when refused. */
  reserve(items: readonly { metric: ModelMetric; amount: bigint }[], ttlSeconds: number, at: Date): number | undefined {
    if (!items.every((item) => this.allows(item.metric, item.amount, at))) return undefined;
    const held = items.map((item) => ({ ...item, label: periodLabel(item.metric, at) }));
    return this.reservations.push({ items: held, expiresAt: at.getTime() + ttlSeconds * 1000, state: "held" }) - 1;
  }

  /**
   * CommitReservation with `actual` per reserved item: counted on the rows it held, never refused
   * for quota; what the allowance left after other holds cannot cover is drawn from grants, as
   * far as they go.
   */
  commit(index: number, actual: readonly bigint[], at: Date): ModelSettlement {
    const reservation = this.reservations[index]!;
    if (reservation.state === "committed" && reservation.actual!.every((amount, j) => amount === actual[j])) return { kind: "repeated", used: reservation.usedAfter! };
    if (reservation.state !== "held") return { kind: "refused" };
    if (at.getTime() >= reservation.expiresAt) return { kind: "expired" };
    reservation.state = "committed";
    reservation.actual = [...actual];
    reservation.usedAfter = reservation.items.map((item, j) => {
      const key = `${item.metric}@${item.label}`;
      const level = this.usage.get(key) ?? 0n;
      const taken = actual[j]!;
      const others = this.#heldOn(item.metric, item.label, at);
      const limit = this.limit(item.metric, at);
      if (taken > 0n && limit !== null && level + others + taken > limit) {
        const free = level >= limit ? 0n : limit - level;
        const beyond = taken - (free > others ? free - others : 0n);
        const available = this.#activeGrants(item.metric, at).reduce((sum, grant) => sum + grant.remaining, 0n);
        this.#draw(item.metric, beyond < available ? beyond : available, at);
      }
      this.usage.set(key, level + taken);
      return level + taken;
    });
    return { kind: "settled", used: reservation.usedAfter };
  }

  /** ReleaseReservation: frees a held one; a released or expired one is answered again; a committed one is refused. */
  release(index: number, at: Date): ModelSettlement {
    const reservation = this.reservations[index]!;
    if (reservation.state === "committed") return { kind: "refused" };
    if (reservation.state === "released" || at.getTime() >= reservation.expiresAt) return { kind: "repeated", used: [] };
    reservation.state = "released";
    return { kind: "settled", used: [] };
  }
}
