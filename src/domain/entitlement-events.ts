/** The kinds of event of the change feed (docs/events.md), as their `type` names them. */
export const ENTITLEMENT_EVENT_TYPES = [
  "entitlements.plan_changed",
  "entitlements.plan_version_migrated",
  "entitlements.trial_started",
  "entitlements.trial_ended",
  "entitlements.plan_change_scheduled",
  "entitlements.plan_change_cancelled",
  "entitlements.override_set",
  "entitlements.override_cleared",
  "entitlements.override_expired",
  "entitlements.grant_added",
  "entitlements.grant_revoked",
  "entitlements.grant_expired",
  "entitlements.subscription_expired",
  "account.suspended",
  "account.reactivated",
  "usage.reset",
  "usage.threshold_crossed",
] as const;

export type EntitlementEventType = (typeof ENTITLEMENT_EVENT_TYPES)[number];

/** How many events one watch may ask about at once (WatchEntitlements.user_ids). */
export const MAX_WATCHED_USERS = 1000;
