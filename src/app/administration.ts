import type { CommonQueryMethods, DatabasePool, DatabaseTransactionConnection } from "slonik";
import type { Clock } from "../domain/clock.ts";
import { queriesOf } from "../db/call-transaction.ts";
import {
  findAccount,
  listAccounts,
  setAccountStatus,
  setSuperadmin,
  setTokensValidAfter,
} from "../db/accounts.ts";
import { listAuditEvents, type AuditEventRecord } from "../db/audit-events.ts";
import { findOverrides } from "../db/overrides.ts";
import { findTrials } from "../db/trials.ts";
import { findGrants } from "../db/usage-grants.ts";
import type { GrantRecord, OverrideRecord } from "../domain/terms.ts";
import { findSubscriptionHistory } from "../db/subscriptions.ts";
import { resetUsageRows } from "../db/usage-counters.ts";
import { revocationInstant, type AccountRecord, type AccountStatus } from "../domain/accounts.ts";
import { isGauge, type Metric } from "../domain/catalog.ts";
import { FailedPreconditionError, InvalidArgumentError, UnknownResourceError } from "../domain/errors.ts";
import { decodePageToken, pageOf } from "../domain/pagination.ts";
import { usageRowOf, type QuotaState } from "../domain/quota.ts";
import { subscriptionHistory, type SubscriptionRecord } from "../domain/subscriptions.ts";
import { userId as validUserId } from "../domain/validation.ts";
import type { CurrentPlan } from "./current-plan.ts";
import type { Entitlements } from "./entitlements.ts";
import { changeAccount } from "./account-changes.ts";
import { platformStats, type PlatformStats } from "./platform-stats.ts";

/** Who performs an administrative action: a superadmin's user id, or "cli". */
export type Actor = string;

export const CLI_ACTOR: Actor = "cli";

export type AccountPage = { readonly accounts: readonly AccountRecord[]; readonly nextPageToken: string };

export type AccountDetails = CurrentPlan & {
  readonly account: AccountRecord;
  /** Every subscription, trials included, newest first. */
  readonly history: readonly SubscriptionRecord[];
  readonly usage: readonly QuotaState[];
  readonly overrides: readonly OverrideRecord[];
  /** Every grant, spent and revoked ones included. */
  readonly grants: readonly GrantRecord[];
};

/**
 * Account administration. Every change runs in one transaction with the audit event that
 * records it, under the account's row lock.
 */
export class Administration {
  readonly #pool: DatabasePool;

  /** The call's deadline-bound transaction, or the pool (db/call-transaction.ts). */
  get #db(): CommonQueryMethods {
    return queriesOf(this.#pool);
  }
  readonly #entitlements: Entitlements;
  readonly #clock: Clock;

  constructor(pool: DatabasePool, entitlements: Entitlements, clock: Clock) {
    this.#pool = pool;
    this.#entitlements = entitlements;
    this.#clock = clock;
  }

  async listAccounts(filter: {
    readonly query: string;
    readonly planCode: string | undefined;
    readonly status: AccountStatus | undefined;
    readonly pageSize: number;
    readonly pageToken: string;
  }): Promise<AccountPage> {
    const filters = [filter.query, filter.planCode ?? "", filter.status ?? ""];
    const afterUserId = decodePageToken(filter.pageToken, filters);
    // A token is opaque, not signed: a forged position must be a user id like any issued one.
    if (afterUserId !== undefined) validUserId(afterUserId, "page_token");
    // An archived plan's subscribers can be listed too.
    if (filter.planCode !== undefined && this.#entitlements.catalog.plan(filter.planCode) === undefined) {
      throw new UnknownResourceError("plan", filter.planCode);
    }
    const rows = await listAccounts(this.#db, {
      query: filter.query,
      planCode: filter.planCode,
      defaultPlanCode: this.#entitlements.catalog.defaultPlan.code,
      status: filter.status,
      afterUserId,
      limit: filter.pageSize + 1,
      now: this.#clock.now(),
    });
    const page = pageOf(rows, filter.pageSize, (account) => account.userId, filters);
    return { accounts: page.items, nextPageToken: page.nextPageToken };
  }

  async accountDetails(userId: string): Promise<AccountDetails> {
    const account = await this.#existingAccount(userId);
    const now = this.#clock.now();
    const current = await this.#entitlements.currentPlan(userId, now);
    const [subscriptions, trials, usage, overrides, grants] = await Promise.all([
      findSubscriptionHistory(this.#db, userId),
      findTrials(this.#db, userId),
      this.#entitlements.quotas(userId, current, now),
      findOverrides(this.#db, userId, now),
      findGrants(this.#db, userId, { includeSpent: true, at: now }),
    ]);
    return { ...current, account, history: subscriptionHistory(subscriptions, trials), usage, overrides, grants };
  }

  async suspend(actor: Actor, userId: string, reason: string): Promise<AccountRecord> {
    if (actor === userId) {
      throw new FailedPreconditionError("superadmins cannot suspend their own account");
    }
    // Suspending again records the new reason; the user was denied everything already.
    const change = { actor, userId, action: "account.suspend", reason, at: this.#clock.now() };
    return changeAccount(this.#db, this.#entitlements, change, async (tx, account) => ({
      result: await setAccountStatus(tx, userId, "suspended", reason),
      changed: true,
      entitlementsUnchanged: account.status === "suspended",
    }));
  }

  /** Reactivating an active account changes nothing: nothing is audited. */
  async reactivate(actor: Actor, userId: string): Promise<AccountRecord> {
    const change = { actor, userId, action: "account.reactivate", reason: "", at: this.#clock.now() };
    return changeAccount(this.#db, this.#entitlements, change, async (tx, account) =>
      account.status === "active" ? { result: account, changed: false } : { result: await setAccountStatus(tx, userId, "active", null), changed: true },
    );
  }

  /** Sets the user's counters of the current period back to zero: all, or one; `reason` is audited. */
  async resetUsage(actor: Actor, userId: string, metric: Metric | undefined, reason = ""): Promise<readonly QuotaState[]> {
    if (metric !== undefined && isGauge(metric)) {
      throw new InvalidArgumentError([
        { field: "metric", description: `"${metric.code}" is a gauge (a level in use), not a counter: it cannot be reset` },
      ]);
    }
    const now = this.#clock.now();
    const counters = metric === undefined ? this.#entitlements.catalog.metrics.filter((m) => !isGauge(m)) : [metric];
    const current = await this.#entitlements.currentPlan(userId, now);
    const details = { metrics: counters.map((m) => m.code).join(",") };
    await this.#change(actor, userId, "usage.reset", reason, (tx) => resetUsageRows(tx, userId, counters.map((counter) => usageRowOf(counter, current, now))), details);
    return this.#entitlements.quotas(userId, current, now);
  }

  /** Refuses every user JWT of the account issued up to now; returns from when tokens count. */
  async revokeSessions(actor: Actor, userId: string): Promise<Date> {
    const validAfter = revocationInstant(this.#clock.now());
    await this.#change(actor, userId, "sessions.revoke", "", (tx) => setTokensValidAfter(tx, userId, validAfter));
    return validAfter;
  }

  /** Grants or withdraws superadmin rights (audited only when they change); the account is created if the user is new. */
  async setSuperadmin(actor: Actor, userId: string, isSuperadmin: boolean): Promise<AccountRecord> {
    const at = this.#clock.now();
    const change = { actor, userId, action: isSuperadmin ? "superadmin.grant" : "superadmin.revoke", reason: "", at, createAccount: true };
    return changeAccount(this.#db, this.#entitlements, change, async (tx, account) =>
      account.isSuperadmin === isSuperadmin ? { result: account, changed: false } : { result: await setSuperadmin(tx, userId, isSuperadmin), changed: true },
    );
  }

  async stats(): Promise<PlatformStats> {
    return platformStats(this.#db, this.#entitlements, this.#clock.now());
  }

  async auditEvents(filter: {
    readonly userId: string | undefined;
    readonly pageSize: number;
    readonly pageToken: string;
  }): Promise<{ readonly events: readonly AuditEventRecord[]; readonly nextPageToken: string }> {
    const filters = [filter.userId ?? ""];
    const before = decodePageToken(filter.pageToken, filters);
    if (before !== undefined && !/^[0-9]+$/.test(before)) {
      throw new InvalidArgumentError([{ field: "page_token", description: "is not a token of this query" }]);
    }
    const rows = await listAuditEvents(this.#db, {
      targetUserId: filter.userId,
      beforeId: before === undefined ? undefined : BigInt(before),
      limit: filter.pageSize + 1,
    });
    const page = pageOf(rows, filter.pageSize, (event) => String(event.id), filters);
    return { events: page.items, nextPageToken: page.nextPageToken };
  }

  async #existingAccount(userId: string): Promise<AccountRecord> {
    const account = await findAccount(this.#db, userId);
    if (account === null) throw new UnknownResourceError("account", userId);
    return account;
  }

  /** Runs a change under the account's lock, with its audit event, in one transaction. */
  #change<T>(
    actor: Actor,
    userId: string,
    action: string,
    reason: string,
    change: (tx: DatabaseTransactionConnection) => Promise<T>,
    details?: Readonly<Record<string, string>>,
  ): Promise<T> {
    const at = this.#clock.now();
    const audited = { actor, userId, action, reason, at, ...(details === undefined ? {} : { details }) };
    return changeAccount(this.#db, this.#entitlements, audited, async (tx) => ({ result: await change(tx), changed: true }));
  }
}
