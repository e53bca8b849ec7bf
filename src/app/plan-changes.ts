import type { CommonQueryMethods, DatabasePool, DatabaseTransactionConnection } from "slonik";
import { findAccountStanding, lockAccount } from "../db/accounts.ts";
import { recordAuditEvent } from "../db/audit-events.ts";
import { queriesOf } from "../db/call-transaction.ts";
import { deleteScheduledChange, findDueChanges, findScheduledChange, upsertScheduledChange } from "../db/scheduled-changes.ts";
import { endCurrentSubscription, replaceCurrentSubscription } from "../db/subscriptions.ts";
import { endRunningTrial, insertTrial } from "../db/trials.ts";
import type { AccountRecord } from "../domain/accounts.ts";
import type { Plan } from "../domain/catalog.ts";
import type { Clock } from "../domain/clock.ts";
import { AccountSuspendedError, FailedPreconditionError, InvalidArgumentError } from "../domain/errors.ts";
import { billingPeriodContaining } from "../domain/periods.ts";
import {
  expiryOf,
  subscriptionInForce,
  trialEnd,
  trialSubscription,
  type ScheduledChange,
  type SubscriptionRecord,
} from "../domain/subscriptions.ts";
import { futureExpiry } from "../domain/terms.ts";
import { changeAccount, nothingForUnknownAccount } from "./account-changes.ts";
import { announceChange } from "./change-events.ts";
import type { Entitlements } from "./entitlements.ts";

/** When a scheduled change takes effect: at the end of the billing period, or at a set time. */
export type ChangeTime = { readonly atPeriodEnd: true } | { readonly at: Date };

/** How many due changes one sweep writes down. */
const SWEEP_BATCH = 100;

/**
 * Changes of an account's plan: moving now (UpgradePlan), trials, and changes scheduled for
 * later. Each runs under the account's lock with its audit event (account-changes.ts), after
 * writing down a scheduled change that came due: answers put it in force at its time already
 * (Entitlements.currentPlan); the next write, or the sweep, records it once.
 */
export class PlanChanges {
  readonly #pool: DatabasePool;
  readonly #entitlements: Entitlements;
  readonly #clock: Clock;

  /** The call's deadline-bound transaction, or the pool (db/call-transaction.ts). */
  get #db(): CommonQueryMethods {
    return queriesOf(this.#pool);
  }

  constructor(pool: DatabasePool, entitlements: Entitlements, clock: Clock) {
    this.#pool = pool;
    this.#entitlements = entitlements;
    this.#clock = clock;
  }

  /**
   * Moves the account to a plan now: the current subscription ends and a new one starts. A trial
   * of the same plan is converted, any other trial ends, and a pending change is dropped.
   */
  async changePlan(actor: string, userId: string, plan: Plan, durationDays: number | undefined): Promise<SubscriptionRecord> {
    const at = this.#clock.now();
    const expiresAt = expiryOf(at, durationDays);
    const reason = durationDays === undefined ? plan.code : `${plan.code} for ${durationDays} days`;
    const change = { actor, userId, action: "plan.change", reason, at, createAccount: true };
    return changeAccount(this.#db, this.#entitlements, change, async (tx, account) => {
      refuseSuspended(account);
      await this.#writeDownDue(tx, userId, at);
      await endRunningTrial(tx, userId, at, plan.code);
      await deleteScheduledChange(tx, userId);
      return { result: await replaceCurrentSubscription(tx, { userId, planCode: plan.code, startedAt: at, expiresAt }), changed: true };
    });
  }

  /** Starts a trial of `days` (absent: the plan's trial_days); one per plan per account, ever. */
  async startTrial(actor: string, userId: string, plan: Plan, days: number | undefined): Promise<SubscriptionRecord> {
    const length = days ?? plan.trialDays;
    if (length === null) {
      throw new InvalidArgumentError([{ field: "days", description: `is required: plan "${plan.code}" has no trial_days in the catalog` }]);
    }
    const at = this.#clock.now();
    const endsAt = trialEnd(at, length);
    const change = { actor, userId, action: "trial.start", reason: `${plan.code} for ${length} days`, at, createAccount: true };
    return changeAccount(this.#db, this.#entitlements, change, async (tx, account) => {
      refuseSuspended(account);
      await this.#writeDownDue(tx, userId, at);
      const current = await this.#subscriptionInForce(tx, userId, at);
      if (current?.planCode === plan.code && current.trialEndsAt == null) {
        throw new FailedPreconditionError(`account "${userId}" is already subscribed to plan "${plan.code}"`);
      }
      await endRunningTrial(tx, userId, at, undefined);
      const trial = await insertTrial(tx, { userId, planCode: plan.code, startedAt: at, endsAt, createdBy: actor });
      if (trial === null) {
        throw new FailedPreconditionError(`account "${userId}" already had a trial of plan "${plan.code}": one trial per plan, ever`);
      }
      return { result: trialSubscription(trial), changed: true };
    });
  }

  /** Schedules a move to `plan`, replacing the pending one; to the default plan, the subscription ends then. */
  async schedule(actor: string, userId: string, plan: Plan, when: ChangeTime): Promise<ScheduledChange> {
    const at = this.#clock.now();
    const change = { actor, userId, action: "plan_change.schedule", reason: plan.code, at, createAccount: true };
    const scheduled = await changeAccount(this.#db, this.#entitlements, change, async (tx) => {
      await this.#writeDownDue(tx, userId, at);
      const effectiveAt = "at" in when ? futureExpiry(when.at, at, "at")! : await this.#periodEnd(tx, userId, at);
      await upsertScheduledChange(tx, { userId, planCode: plan.code, effectiveAt, createdBy: actor, createdAt: at });
      return { result: { planCode: plan.code, effectiveAt }, changed: true };
    });
    return scheduled;
  }

  /** Drops the pending change; null (and nothing audited) when none was pending. */
  async cancelScheduled(actor: string, userId: string): Promise<ScheduledChange | null> {
    const at = this.#clock.now();
    const change = { actor, userId, action: "plan_change.cancel", reason: "", at };
    const cancelled = await changeAccount(this.#db, this.#entitlements, change, async (tx) => {
      // A change that already came due is in force: too late to cancel.
      await this.#writeDownDue(tx, userId, at);
      const deleted = await deleteScheduledChange(tx, userId);
      return { result: deleted === null ? null : { planCode: deleted.planCode, effectiveAt: deleted.effectiveAt }, changed: deleted !== null };
    }).catch(nothingForUnknownAccount(userId));
    this.#entitlements.forget(userId);
    return cancelled;
  }

  /** Writes down changes that came due (a batch of them); returns how many. */
  async writeDownDueChanges(): Promise<number> {
    const at = this.#clock.now();
    let written = 0;
    for (const userId of await findDueChanges(this.#pool, at, SWEEP_BATCH)) {
      const wrote = await this.#pool.transaction(async (tx) => (await lockAccount(tx, userId)) !== null && (await this.#writeDownDue(tx, userId, at)));
      if (wrote) {
        this.#entitlements.forget(userId);
        written++;
      }
    }
    return written;
  }

  /**
   * Records the account's change that came due by `at`, as its answers already have it: the
   * subscription replaced (or ended, for the default plan) at `effectiveAt`, a trial running then
   * ended; audited once, in the name of who scheduled it. Run it under the account's lock.
   */
  async #writeDownDue(tx: DatabaseTransactionConnection, userId: string, at: Date): Promise<boolean> {
    const due = await findScheduledChange(tx, userId);
    if (due === null || due.effectiveAt.getTime() > at.getTime()) return false;
    await deleteScheduledChange(tx, userId);
    await endRunningTrial(tx, userId, due.effectiveAt, due.planCode);
    if (due.planCode === this.#entitlements.catalog.defaultPlan.code) {
      await endCurrentSubscription(tx, userId, due.effectiveAt);
    } else {
      await replaceCurrentSubscription(tx, { userId, planCode: due.planCode, startedAt: due.effectiveAt, expiresAt: null });
    }
    const reason = `${due.planCode} from ${due.effectiveAt.toISOString()}`;
    await recordAuditEvent(tx, { actorId: due.createdBy, action: "plan_change.apply", targetUserId: userId, reason, at });
    await announceChange(tx, this.#entitlements, userId, { type: "entitlements.plan_changed", at, details: { cause: "scheduled_change", effective_at: due.effectiveAt.toISOString() } });
    return true;
  }

  async #subscriptionInForce(tx: DatabaseTransactionConnection, userId: string, at: Date): Promise<SubscriptionRecord | null> {
    const standing = await findAccountStanding(tx, userId, at);
    return subscriptionInForce(userId, standing, at, (code) => this.#entitlements.catalog.plan(code)?.version);
  }

  /** The end of the account's current billing period (of its trial, during one). */
  async #periodEnd(tx: DatabaseTransactionConnection, userId: string, at: Date): Promise<Date> {
    const current = await this.#subscriptionInForce(tx, userId, at);
    if (current === null) {
      throw new FailedPreconditionError(`account "${userId}" has no subscription, so no billing period ends: schedule the change \`at\` a time`);
    }
    if (current.trialEndsAt != null) return current.trialEndsAt;
    const plan = await this.#entitlements.subscribedPlan(current);
    return billingPeriodContaining(current.startedAt, plan?.interval ?? "month", at).end;
  }
}

function refuseSuspended(account: AccountRecord): void {
  if (account.status === "suspended") throw new AccountSuspendedError(account.userId);
}
