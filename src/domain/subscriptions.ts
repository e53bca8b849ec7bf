import { InvalidArgumentError } from "./errors.ts";

const DAY_MS = 86_400_000;

export type SubscriptionRecord = {
  readonly userId: string;
  readonly planCode: string;
  /** The plan's version it started on, whose terms it keeps. */
  readonly planVersion: number;
  readonly startedAt: Date;
  /** Null: no end. */
  readonly expiresAt: Date | null;
  /** Set when a later plan change replaced it. */
  readonly endedAt: Date | null;
  /** Set on a trial: when it ends and the account is back on what it had before. */
  readonly trialEndsAt?: Date | null;
};

export type SubscriptionStatus = "active" | "trialing" | "expired" | "replaced";

/** A trial of a plan: one per plan per account, ever. */
export type TrialRecord = {
  readonly userId: string;
  readonly planCode: string;
  /** The plan's version it started on. */
  readonly planVersion: number;
  readonly startedAt: Date;
  readonly endsAt: Date;
};

/** A plan change that takes effect at `effectiveAt`; to the default plan, it ends the subscription. */
export type ScheduledChange = {
  readonly planCode: string;
  readonly effectiveAt: Date;
};

/** A trial the account had or has, and when it was cut short (null: it ran, or runs, its course). */
export type PastTrial = { readonly trial: TrialRecord; readonly endedAt: Date | null };

/** The subscription a trial puts the account on while it runs. */
export function trialSubscription(trial: TrialRecord): SubscriptionRecord {
  return {
    userId: trial.userId,
    planCode: trial.planCode,
    planVersion: trial.planVersion,
    startedAt: trial.startedAt,
    expiresAt: null,
    endedAt: null,
    trialEndsAt: trial.endsAt,
  };
}

/**
 * An account's subscription history, newest first: its subscriptions (already newest first) and
 * its trials, each trial as the subscription it put the account on, ended at `endedAt` when a
 * plan change or another trial cut it short.
 */
export function subscriptionHistory(subscriptions: readonly SubscriptionRecord[], trials: readonly PastTrial[]): SubscriptionRecord[] {
  const entries = trials.map(({ trial, endedAt }) => ({ ...trialSubscription(trial), endedAt }));
  // A stable sort keeps the subscriptions' own order among those that started together.
  return [...subscriptions, ...entries].sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime());
}

export const MAX_TRIAL_DAYS = 365;

/** When a trial of `days` started at `startedAt` ends. */
export function trialEnd(startedAt: Date, days: number): Date {
  if (!Number.isInteger(days) || days < 1 || days > MAX_TRIAL_DAYS) {
    throw new InvalidArgumentError([{ field: "days", description: `must be between 1 and ${MAX_TRIAL_DAYS} when set` }]);
  }
  return new Date(startedAt.getTime() + days * DAY_MS);
}

export const MAX_DURATION_DAYS = 3650;

export function subscriptionStatus(subscription: SubscriptionRecord, at: Date): SubscriptionStatus {
  if (subscription.endedAt !== null) {
    return "replaced";
  }
  if (subscription.trialEndsAt != null) {
    return subscription.trialEndsAt.getTime() > at.getTime() ? "trialing" : "expired";
  }
  if (subscription.expiresAt !== null && subscription.expiresAt.getTime() <= at.getTime()) {
    return "expired";
  }
  return "active";
}

/** When a subscription that starts at `startedAt` for `durationDays` lapses (null: never). */
export function expiryOf(startedAt: Date, durationDays: number | undefined): Date | null {
  if (durationDays === undefined) {
    return null;
  }
  if (!Number.isInteger(durationDays) || durationDays < 1 || durationDays > MAX_DURATION_DAYS) {
    throw new InvalidArgumentError([
      { field: "duration_days", description: `must be between 1 and ${MAX_DURATION_DAYS} when set` },
    ]);
  }
  return new Date(startedAt.getTime() + durationDays * DAY_MS);
}

/** What an account's plan hangs on: its subscription, a trial, a scheduled change. */
export type PlanCommitments = {
  /** The current (not replaced) subscription, which may have expired. */
  readonly subscription: SubscriptionRecord | null;
  /** A trial not ended early, which may have run out. */
  readonly trial: TrialRecord | null;
  /** A pending change, which may have come due. */
  readonly scheduledChange: ScheduledChange | null;
};

/**
 * The subscription that decides the account's plan at `at` (null: the default plan), with no job
 * having run: a scheduled change that came due (to the default plan: none; to another plan, a
 * subscription to its version `versionOf` gives, from `effectiveAt`), else a trial still running,
 * else the subscription while it is active.
 */
export function subscriptionInForce(
  userId: string,
  commitments: PlanCommitments,
  at: Date,
  versionOf: (planCode: string) => number | undefined,
): SubscriptionRecord | null {
  const { subscription, trial, scheduledChange } = commitments;
  if (scheduledChange !== null && scheduledChange.effectiveAt.getTime() <= at.getTime()) {
    const version = versionOf(scheduledChange.planCode);
    if (version === undefined) return null;
    return { userId, planCode: scheduledChange.planCode, planVersion: version, startedAt: scheduledChange.effectiveAt, expiresAt: null, endedAt: null };
  }
  if (trial !== null && trial.endsAt.getTime() > at.getTime()) return trialSubscription(trial);
  return subscription !== null && subscriptionStatus(subscription, at) === "active" ? subscription : null;
}
