import { quotaLimit, type Plan } from "./catalog.ts";
import { InvalidArgumentError } from "./errors.ts";
import { LATEST_INSTANT } from "./validation.ts";

/** Where an entitlement comes from: the user's plan, or an override that beats it. */
export type EntitlementSource = "plan" | "override";

/** A feature switched on or off for one account, whatever its plan says. */
export type FeatureOverride = {
  readonly kind: "feature";
  /** The feature's code. */
  readonly target: string;
  readonly enabled: boolean;
  /** Null: until cleared. */
  readonly expiresAt: Date | null;
};

/** A quota's limit set for one account (null: unlimited), whatever its plan says. */
export type QuotaOverride = {
  readonly kind: "quota";
  /** The metric's code. */
  readonly target: string;
  readonly limit: bigint | null;
  readonly expiresAt: Date | null;
};

export type Override = FeatureOverride | QuotaOverride;

/** An override as recorded: why, by whom, when. */
export type OverrideRecord = Override & {
  readonly userId: string;
  readonly reason: string;
  readonly createdBy: string;
  readonly createdAt: Date;
};

/** What a usage grant still holds, as every decision needs it. */
export type GrantBalance = {
  readonly id: string;
  readonly metric: string;
  readonly remaining: bigint;
  /** Null: until spent or revoked. */
  readonly expiresAt: Date | null;
};

/** A usage grant as recorded. */
export type GrantRecord = GrantBalance & {
  readonly userId: string;
  readonly amount: bigint;
  readonly reason: string;
  readonly createdBy: string;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
};

/** The per-account terms every answer weighs: overrides, and grants with something left. */
export type AccountTerms = {
  readonly overrides: readonly Override[];
  readonly grants: readonly GrantBalance[];
};

/** The terms of an account that has none (most of them): one shared value. */
export const NO_TERMS: AccountTerms = Object.freeze({ overrides: Object.freeze([]), grants: Object.freeze([]) });

/** Whether something that lapses at `expiresAt` (null: never) still holds at `at`. */
export function inForce(expiresAt: Date | null, at: Date): boolean {
  return expiresAt === null || expiresAt.getTime() > at.getTime();
}

function activeOverride<K extends Override["kind"]>(
  overrides: readonly Override[],
  kind: K,
  target: string,
  at: Date,
): Extract<Override, { kind: K }> | undefined {
  for (const override of overrides) {
    if (override.kind === kind && override.target === target && inForce(override.expiresAt, at)) {
      return override as Extract<Override, { kind: K }>;
    }
  }
  return undefined;
}

export type FeatureEntitlement = { readonly enabled: boolean; readonly source: EntitlementSource };

/** The four answers featureEntitlement gives, shared: it runs on every HasFeature. */
const FEATURE_ENTITLEMENTS = {
  plan: [Object.freeze({ enabled: false, source: "plan" }), Object.freeze({ enabled: true, source: "plan" })],
  override: [Object.freeze({ enabled: false, source: "override" }), Object.freeze({ enabled: true, source: "override" })],
} as const satisfies Record<EntitlementSource, readonly [FeatureEntitlement, FeatureEntitlement]>;

/** Whether a feature is on for the account at `at`: an override in force beats the plan. */
export function featureEntitlement(plan: Plan, terms: AccountTerms, feature: string, at: Date): FeatureEntitlement {
  const override = terms.overrides.length === 0 ? undefined : activeOverride(terms.overrides, "feature", feature, at);
  return override === undefined ? FEATURE_ENTITLEMENTS.plan[plan.features[feature] === true ? 1 : 0] : FEATURE_ENTITLEMENTS.override[override.enabled ? 1 : 0];
}

/** The account's limit on a metric at `at` (null: unlimited): an override in force beats the plan. */
export function quotaEntitlement(plan: Plan, terms: AccountTerms, metric: string, at: Date): { limit: bigint | null; source: EntitlementSource } {
  const override = terms.overrides.length === 0 ? undefined : activeOverride(terms.overrides, "quota", metric, at);
  return override === undefined ? { limit: quotaLimit(plan, metric), source: "plan" } : { limit: override.limit, source: "override" };
}

/** What the account's grants of a metric still hold at `at`. */
export function grantRemaining(terms: AccountTerms, metric: string, at: Date): bigint {
  let sum = 0n;
  for (const grant of terms.grants) {
    if (grant.metric === metric && inForce(grant.expiresAt, at)) sum += grant.remaining;
  }
  return sum;
}

/** An optional expiry of something set at `now`: it must lie ahead, before the year 10000. */
export function futureExpiry(expiresAt: Date | undefined, now: Date, field = "expires_at"): Date | null {
  if (expiresAt === undefined) return null;
  const ms = expiresAt.getTime();
  if (Number.isNaN(ms) || ms <= now.getTime() || ms > LATEST_INSTANT) {
    throw new InvalidArgumentError([{ field, description: "must lie in the future (before the year 10000) when set" }]);
  }
  return expiresAt;
}
