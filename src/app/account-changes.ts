import type { CommonQueryMethods, DatabaseTransactionConnection } from "slonik";
import { ensureAccount, lockAccount } from "../db/accounts.ts";
import { recordAuditEvent } from "../db/audit-events.ts";
import type { AccountRecord } from "../domain/accounts.ts";
import { UnknownResourceError } from "../domain/errors.ts";
import type { Entitlements } from "./entitlements.ts";
import { announceChange, eventOfAction } from "./change-events.ts";

/** An audited change to one account. */
export type AccountChange = {
  /** Who makes it: a superadmin's user id, `service:<name>`, or "cli". */
  readonly actor: string;
  readonly userId: string;
  readonly action: string;
  readonly reason: string;
  /** What the change touched, for the audit event (AuditEvent.details). */
  readonly details?: Readonly<Record<string, string>>;
  readonly at: Date;
  /** Records a user never seen first (terms may be set before a user's first call); otherwise an unknown account is not_found. */
  readonly createAccount?: boolean;
};

/**
 * Runs a change under the account's lock, with its audit event, the notification that evicts
 * the account on every replica and its change feed event (change-events.ts), in one transaction. `apply` returns what it changed, or
 * `unchanged` (then nothing is audited or announced) with the result.
 */
export async function changeAccount<T>(
  db: CommonQueryMethods,
  entitlements: Entitlements,
  change: AccountChange,
  apply: (
    tx: DatabaseTransactionConnection,
    account: AccountRecord,
  ) => Promise<{ readonly result: T; readonly changed: boolean; /** Audited, but what the user is entitled to is as it was: no feed event. */ readonly entitlementsUnchanged?: boolean }>,
): Promise<T> {
  const { result, changed } = await db.transaction(async (tx) => {
    if (change.createAccount === true) await ensureAccount(tx, change.userId, change.at);
    const account = await lockAccount(tx, change.userId);
    if (account === null) {
      throw new UnknownResourceError("account", change.userId);
    }
    const applied = await apply(tx, account);
    if (applied.changed) {
      await recordAuditEvent(tx, {
        actorId: change.actor,
        action: change.action,
        targetUserId: change.userId,
        reason: change.reason,
        ...(change.details === undefined ? {} : { details: change.details }),
        at: change.at,
      });
      const type = applied.entitlementsUnchanged === true ? undefined : eventOfAction(change.action);
      const details = change.details;
      await announceChange(tx, entitlements, change.userId, type === undefined ? undefined : { type, at: change.at, ...(details === undefined ? {} : { details }) });
    }
    return applied;
  });
  if (changed) entitlements.forget(change.userId);
  return result;
}

/**
 * For changes that only undo something (clearing an override, cancelling a scheduled change): a
 * user never seen has nothing to undo, answered as such (null) without recording the user.
 */
export function nothingForUnknownAccount(userId: string): (error: unknown) => null {
  return (error) => {
    if (error instanceof UnknownResourceError && error.resourceType === "account" && error.resourceName === userId) return null;
    throw error;
  };
}
