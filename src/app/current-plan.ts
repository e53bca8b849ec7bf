import type { AccountStanding } from "../db/accounts.ts";
import type { PlanStanding } from "../domain/entitlement-view.ts";

/**
 * The plan a user is on now (`subscription` absent on the default free plan), whether the account
 * is suspended, the pending change, and the overrides and grants weighed at their own expiry.
 */
export type CurrentPlan = PlanStanding & {
  /** What it was decided from: its revision and when it was read are every answer's freshness. */
  readonly standing: AccountStanding;
};
