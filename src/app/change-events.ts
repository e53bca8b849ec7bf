import type { CommonQueryMethods } from "slonik";
import { findAccountStanding } from "../db/accounts.ts";
import { recordEntitlementEvent } from "../db/entitlement-events.ts";
import { notifyAccountChanged } from "../db/notifications.ts";
import type { EntitlementEventType } from "../domain/entitlement-events.ts";
import { entitlementView } from "../domain/entitlement-view.ts";
import type { Entitlements } from "./entitlements.ts";

/** The feed's event for each audited account action that changes what the user is entitled to. */
const EVENT_OF_ACTION: Readonly<Record<string, EntitlementEventType>> = {
  "plan.change": "entitlements.plan_changed",
  "plan_change.apply": "entitlements.plan_changed",
  "plan.migrate_subscribers": "entitlements.plan_version_migrated",
  "trial.start": "entitlements.trial_started",
  "plan_change.schedule": "entitlements.plan_change_scheduled",
  "plan_change.cancel": "entitlements.plan_change_cancelled",
  "override.set": "entitlements.override_set",
  "override.clear": "entitlements.override_cleared",
  "grant.create": "entitlements.grant_added",
  "grant.revoke": "entitlements.grant_revoked",
  "account.suspend": "account.suspended",
  "account.reactivate": "account.reactivated",
  "usage.reset": "usage.reset",
};

/** The event an audited action gives the feed; none for sessions, superadmin rights, refunds. */
export function eventOfAction(action: string): EntitlementEventType | undefined {
  return EVENT_OF_ACTION[action];
}

export type ChangeEvent = {
  readonly type: EntitlementEventType;
  readonly at: Date;
  readonly details?: Readonly<Record<string, string>>;
};

/**
 * Records, in the transaction changing the account (under its lock), that it changed: every
 * replica evicts it when the transaction commits; with `event`, the change feed gets the event,
 * with what the user is entitled to after the change, and the account's revision rises.
 */
export async function announceChange(db: CommonQueryMethods, entitlements: Entitlements, userId: string, event?: ChangeEvent): Promise<void> {
  await notifyAccountChanged(db, userId);
  if (event === undefined) return;
  const current = await entitlements.planOf(userId, await findAccountStanding(db, userId, event.at), event.at, db);
  await recordEntitlementEvent(db, {
    userId,
    type: event.type,
    at: event.at,
    entitlements: entitlementView(current, event.at),
    ...(event.details === undefined ? {} : { details: event.details }),
  });
}
