import { isGauge, type Metric, type Plan } from "./catalog.ts";
import { EntitlementError, InvalidArgumentError } from "./errors.ts";
import { currentUsageRow, usagePeriod, type Period } from "./periods.ts";
import { grantRemaining, quotaEntitlement, type AccountTerms, type EntitlementSource } from "./terms.ts";

/**
 * The most a usage row can hold, unlimited metrics included: 2^53 - 1 keeps every value exact
 * as a JavaScript number and keeps used + amount far from PostgreSQL's bigint overflow.
 */
export const MAX_USAGE = 2n ** 53n - 1n;

/** A user's usage of one metric against a limit, at a moment. */
export type QuotaState = {
  readonly metric: string;
  readonly used: bigint;
  readonly limit: bigint | null;
  /** max(0, max(0, limit - used) + grantRemaining - reserved); null when unlimited. */
  readonly remaining: bigint | null;
  /** Null for a gauge. */
  readonly period: Period | null;
  /** Whether `limit` is the plan's or an override's. */
  readonly limitSource: EntitlementSource;
  /** What the account's active grants of the metric still hold (counted only under a limit). */
  readonly grantRemaining: bigint;
  /** What held reservations hold: counted as used by every decision until they are settled or expire. */
  readonly reserved: bigint;
};

/** What besides the plan shapes a quota: an override's limit, grants, reservations, the billing anchor of its periods. */
export type QuotaTerms = {
  readonly limitSource?: EntitlementSource;
  readonly grantRemaining?: bigint;
  readonly reserved?: bigint;
  readonly anchor?: Date | null;
};

/**
 * A usage row as read: its count, and what its held reservations hold, which stands until
 * `reservedUntil` (the earliest expiry among them; null when none holds anything).
 */
export type UsageLevel = {
  readonly used: bigint;
  readonly reserved: bigint;
  readonly reservedUntil: Date | null;
  /** When it was read from the database (an answer's as_of). */
  readonly readAt: Date;
};

/** Whether a level read earlier still says what is reserved at `at`: none of its holds has expired since. */
export function levelStands(level: UsageLevel, at: Date): boolean {
  return level.reservedUntil === null || at.getTime() < level.reservedUntil.getTime();
}

/** One amount that did not fit: the quota it met, and what was asked. */
export type QuotaRefusal = { readonly quota: QuotaState; readonly requested: bigint };

/** Amounts that do not fit the user's quotas (one, or every refused item of a call); nothing was counted. */
export class QuotaExceededError extends EntitlementError {
  override name = "QuotaExceededError";
  readonly userId: string;
  /** At least one. */
  readonly refusals: readonly QuotaRefusal[];

  constructor(userId: string, refusals: readonly QuotaRefusal[]) {
    super(refusals.map(({ quota, requested }) => refusalMessage(quota, requested)).join("; "));
    this.userId = userId;
    this.refusals = refusals;
  }
}

/** What one refusal says: used, limit, grants, reservations, and what was asked. */
export function refusalMessage(quota: QuotaState, requested: bigint): string {
  return (
    `quota exceeded for metric "${quota.metric}": ${quota.used} used` +
    (quota.limit === null ? "" : ` of ${quota.limit}`) +
    (quota.grantRemaining > 0n ? ` (and ${quota.grantRemaining} left in grants)` : "") +
    (quota.reserved > 0n ? `, ${quota.reserved} reserved` : "") +
    `, ${requested} more requested`
  );
}

export function quotaState(metric: Metric, limit: bigint | null, used: bigint, at: Date, terms: QuotaTerms = {}): QuotaState {
  const grants = limit === null ? 0n : (terms.grantRemaining ?? 0n);
  const reserved = terms.reserved ?? 0n;
  const free = limit === null ? null : (used >= limit ? 0n : limit - used) + grants - reserved;
  return {
    metric: metric.code,
    used,
    limit,
    remaining: free === null ? null : free > 0n ? free : 0n,
    period: usagePeriod(metric, at, terms.anchor ?? null),
    limitSource: terms.limitSource ?? "plan",
    grantRemaining: grants,
    reserved,
  };
}

/**
 * What an account's quotas are weighed against: its plan, its terms, and the subscription whose
 * start anchors the periods of metrics that follow it.
 */
export type QuotaBasis = {
  readonly plan: Plan;
  readonly terms: AccountTerms;
  readonly subscription: { readonly startedAt: Date } | undefined;
};

/** Where the periods of the account's subscription-anchored metrics start. */
export function anchorOf(basis: QuotaBasis): Date | null {
  return basis.subscription?.startedAt ?? null;
}

/** The usage row of a metric that the account counts into at `at`. */
export function usageRowOf(metric: Metric, basis: QuotaBasis, at: Date) {
  return currentUsageRow(metric, at, anchorOf(basis));
}

/**
 * A metric's quota for an account: the limit in force at `at` (plan or override), its grants
 * (`grants` when a decision just read them, else the basis's), what reservations hold, its period.
 */
export function quotaOf(metric: Metric, basis: QuotaBasis, used: bigint, at: Date, grants: bigint | null = null, reserved = 0n): QuotaState {
  const { limit, source } = quotaEntitlement(basis.plan, basis.terms, metric.code, at);
  return quotaState(metric, limit, used, at, {
    limitSource: source,
    grantRemaining: grants ?? grantRemaining(basis.terms, metric.code, at),
    reserved,
    anchor: anchorOf(basis),
  });
}

/**
 * A replayed call's quota: the usage and limit its first call answered, as of then, with the
 * grants the account holds now.
 */
export function replayedQuota(metric: Metric, basis: QuotaBasis, first: { limit: bigint | null; usedAfter: bigint; createdAt: Date }, now: Date): QuotaState {
  const source = quotaEntitlement(basis.plan, basis.terms, metric.code, first.createdAt).source;
  return quotaState(metric, first.limit, first.usedAfter, first.createdAt, {
    limitSource: source,
    grantRemaining: grantRemaining(basis.terms, metric.code, now),
    anchor: anchorOf(basis),
  });
}

/** The ceiling that used + amount must not pass. */
export function usageCeiling(limit: bigint | null): bigint {
  return limit === null || limit > MAX_USAGE ? MAX_USAGE : limit;
}

/**
 * Whether `amount` more units fit: held reservations count as used, and what the allowance
 * (limit - used) cannot cover must be in grants, which count under a limit only (the SQL
 * function fit_usage decides the same way). Lowering a gauge always fits, even when a downgrade
 * left it above the new limit; raising it does not until it is back under.
 */
export function fits(used: bigint, amount: bigint, limit: bigint | null, grantRemaining = 0n, reserved = 0n): boolean {
  const ceiling = usageCeiling(limit);
  if (amount <= 0n || used + reserved + amount <= ceiling) return true;
  const allowance = ceiling > used ? ceiling - used : 0n;
  return ceiling < MAX_USAGE && amount + reserved - allowance <= grantRemaining;
}

function checkMagnitude(amount: bigint): void {
  if (amount > MAX_USAGE || amount < -MAX_USAGE) {
    throw new InvalidArgumentError([
      { field: "amount", description: `must be between -${MAX_USAGE} and ${MAX_USAGE}` },
    ]);
  }
}

/** The amount an IncrementUsage applies: positive for counters, non-zero for gauges. */
export function incrementAmount(metric: Metric, amount: bigint): bigint {
  checkMagnitude(amount);
  if (amount === 0n) {
    throw new InvalidArgumentError([{ field: "amount", description: "must not be 0" }]);
  }
  if (amount < 0n && !isGauge(metric)) {
    throw new InvalidArgumentError([
      {
        field: "amount",
        description: `must be positive: "${metric.code}" is a counter; only gauges take negative amounts`,
      },
    ]);
  }
  return amount;
}

/** The amount a CheckQuota asks about: 0 means 1. */
export function checkAmount(metric: Metric, amount: bigint): bigint {
  return amount === 0n ? 1n : incrementAmount(metric, amount);
}

/**
 * The thresholds (percentages of `limit`, ascending) that `used` has reached: none under no limit
 * (unlimited) or a limit of 0 (nothing to be a share of).
 */
export function thresholdsReached(thresholds: readonly number[], used: bigint, limit: bigint | null): number[] {
  if (limit === null || limit <= 0n) return [];
  return thresholds.filter((threshold) => used * 100n >= BigInt(threshold) * limit);
}
