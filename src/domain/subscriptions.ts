import { InvalidArgumentError } from "./errors.ts";

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
};

export type SubscriptionStatus = "active" | "expired" | "replaced";

export const MAX_DURATION_DAYS = 3650;

const DAY_MS = 86_400_000;

export function subscriptionStatus(subscription: SubscriptionRecord, at: Date): SubscriptionStatus {
  if (subscription.endedAt !== null) {
    return "replaced";
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
