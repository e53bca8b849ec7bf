import type { CommonQueryMethods, DatabasePool } from "slonik";
import { ensureAccount } from "../db/accounts.ts";
import { callDeadline, queriesOf } from "../db/call-transaction.ts";
import { consumeItemsBatch, type ItemOutcome, type ItemsConsumption, type ItemsOutcome } from "../db/consumptions.ts";
import { claimConsumptionKey, recordKeyResult, type RememberedCall } from "../db/consumption-keys.ts";
import type { IncrementBatcher } from "../db/increment-batcher.ts";
import { lockUsageRow, setUsageRow } from "../db/usage-counters.ts";
import { isGauge, type Metric } from "../domain/catalog.ts";
import type { Clock } from "../domain/clock.ts";
import { AccountSuspendedError, FailedPreconditionError, IdempotencyKeyReusedError, InvalidArgumentError } from "../domain/errors.ts";
import { QuotaExceededError, quotaOf, replayedQuota, usageCeiling, usageRowOf, type QuotaState } from "../domain/quota.ts";
import { quotaEntitlement } from "../domain/terms.ts";
import { changeAccount } from "./account-changes.ts";
import type { CurrentPlan } from "./current-plan.ts";
import type { Entitlements } from "./entitlements.ts";
import { IDEMPOTENCY_KEY_RETENTION_DAYS } from "./increments.ts";

/** A refund or level this call decided, or the first call's under its key. */
type Decided = { readonly kind: "counted"; readonly used: bigint; readonly reserved: bigint } | { readonly kind: "held"; readonly first: RememberedCall };

/** Usage changed by a call, and whether the call was a retry answered from its key. */
export type UsageChange<T> = { readonly result: T; readonly replayed: boolean };

/**
 * Usage beyond one increment: several metrics all or nothing (on the group-commit path of
 * IncrementUsage), refunds of a counter, and a gauge's level set outright. Keys of the three share
 * one space (db/consumption-keys.ts); a retry answers its first result.
 */
export class UsageChanges {
  readonly #pool: DatabasePool;
  readonly #entitlements: Entitlements;
  readonly #clock: Clock;
  readonly #batcher: IncrementBatcher | undefined;

  /** The call's deadline-bound transaction, or the pool (db/call-transaction.ts). */
  get #db(): CommonQueryMethods {
    return queriesOf(this.#pool);
  }

  constructor(pool: DatabasePool, entitlements: Entitlements, clock: Clock, batcher?: IncrementBatcher) {
    this.#pool = pool;
    this.#entitlements = entitlements;
    this.#clock = clock;
    this.#batcher = batcher;
  }

  /** Counts every item or none; refused items are QuotaExceededError's refusals. */
  async consume(userId: string, items: readonly UsageAmount[], key: string | undefined): Promise<UsageChange<QuotaState[]>> {
    const now = this.#clock.now();
    const current = await this.#entitlements.currentPlan(userId, now);
    if (current.suspended) throw new AccountSuspendedError(userId);
    const outcome = await this.decideItems(itemsCall(userId, current, items, key, now));
    if (outcome.kind === "replayed") {
      const asked = items.map(({ metric, amount }) => ({ metric: metric.code, amount }));
      if (outcome.firstKind !== "consume" || !sameItems(outcome.first, asked)) throw new IdempotencyKeyReusedError(key!);
      const result = outcome.first.map((first, index) => replayedQuota(items[index]!.metric, current, { ...first, createdAt: outcome.createdAt }, now));
      return { result, replayed: true };
    }
    const quotas = outcome.items.map((item, index) => quotaOf(items[index]!.metric, current, item.used, now, item.grantRemaining, item.reserved));
    const granted = outcome.kind === "granted";
    this.#entitlements.usageChanged(userId, granted && outcome.items.some((item) => item.grantRemaining !== null), granted ? quotas : []);
    if (outcome.kind === "refused") throw itemsRefused(userId, outcome.items, quotas, items);
    return { result: quotas, replayed: false };
  }

  /** A ConsumeUsage or ReserveUsage call decided: on the group commit when there is one. */
  async decideItems(call: ItemsConsumption): Promise<ItemsOutcome> {
    return this.#batcher === undefined ? (await consumeItemsBatch(this.#db, [call]))[0]! : this.#batcher.submitItems(call, callDeadline());
  }

  /** Gives back usage of a counter in the current period, audited with `actor`. */
  async refund(actor: string, request: { userId: string; metric: Metric; amount: bigint; key: string; reason: string }): Promise<UsageChange<QuotaState>> {
    const { userId, metric, amount, key } = request;
    if (isGauge(metric)) {
      throw new InvalidArgumentError([{ field: "metric", description: `"${metric.code}" is a gauge: set its level with SetUsage` }]);
    }
    const now = this.#clock.now();
    const current = await this.#entitlements.currentPlan(userId, now);
    const row = usageRowOf(metric, current, now);
    const change = { actor, userId, action: "usage.refund", reason: `${amount} ${metric.code}: ${request.reason}`, at: now, createAccount: true };
    const outcome = await changeAccount<Decided>(this.#db, this.#entitlements, change, async (tx) => {
      const level = await lockUsageRow(tx, { userId, ...row }, now);
      const claimed = await claimConsumptionKey(tx, { userId, key, kind: "refund", metrics: [metric.code], amounts: [amount], at: now, expiresAt: keyExpiry(now) });
      if (claimed.kind === "held") return { result: claimed, changed: false };
      if (level.used < amount) {
        throw new FailedPreconditionError(`cannot refund ${amount} ${metric.code}: the current period counts ${level.used}`);
      }
      const used = await setUsageRow(tx, { userId, ...row }, level.used - amount, now);
      await recordKeyResult(tx, userId, key, [used], [quotaEntitlement(current.plan, current.terms, metric.code, now).limit]);
      return { result: { kind: "counted", used, reserved: level.reserved }, changed: true };
    });
    return this.#answer(outcome, current, metric, "refund", amount, key, now);
  }

  /** Sets a gauge's level: above the limit only when it shrinks. */
  async setLevel(userId: string, metric: Metric, value: bigint, key: string | undefined): Promise<UsageChange<QuotaState>> {
    if (!isGauge(metric)) {
      throw new InvalidArgumentError([{ field: "metric", description: `"${metric.code}" is a counter: only gauges (reset never) take a level` }]);
    }
    const now = this.#clock.now();
    const current = await this.#entitlements.currentPlan(userId, now);
    if (current.suspended) throw new AccountSuspendedError(userId);
    const row = usageRowOf(metric, current, now);
    const { limit } = quotaEntitlement(current.plan, current.terms, metric.code, now);
    const outcome = await this.#db.transaction(async (tx): Promise<Decided> => {
      await ensureAccount(tx, userId, now);
      const level = await lockUsageRow(tx, { userId, ...row }, now);
      if (key !== undefined) {
        const claimed = await claimConsumptionKey(tx, { userId, key, kind: "set", metrics: [metric.code], amounts: [value], at: now, expiresAt: keyExpiry(now) });
        if (claimed.kind === "held") return claimed;
      }
      // What reservations hold counts as part of the level.
      if (value > level.used && value + level.reserved > usageCeiling(limit)) {
        throw new QuotaExceededError(userId, [{ quota: quotaOf(metric, current, level.used, now, null, level.reserved), requested: value - level.used }]);
      }
      const used = await setUsageRow(tx, { userId, ...row }, value, now);
      if (key !== undefined) await recordKeyResult(tx, userId, key, [used], [limit]);
      return { kind: "counted", used, reserved: level.reserved };
    });
    if (outcome.kind === "counted") this.#entitlements.usageChanged(userId, false);
    return this.#answer(outcome, current, metric, "set", value, key ?? "", now);
  }

  /** A refund's or level's answer: the row now, or the first call's under its key. */
  #answer(outcome: Decided, current: CurrentPlan, metric: Metric, kind: string, amount: bigint, key: string, now: Date): UsageChange<QuotaState> {
    if (outcome.kind === "counted") return { result: quotaOf(metric, current, outcome.used, now, null, outcome.reserved), replayed: false };
    const first = outcome.first;
    if (first.kind !== kind || first.metrics.length !== 1 || first.metrics[0] !== metric.code || first.amounts[0] !== amount) {
      throw new IdempotencyKeyReusedError(key);
    }
    return { result: replayedQuota(metric, current, { limit: first.quotaLimits[0] ?? null, usedAfter: first.usedAfter[0]!, createdAt: first.createdAt }, now), replayed: true };
  }
}

/** Units of one metric that a call uses or holds. */
export type UsageAmount = { readonly metric: Metric; readonly amount: bigint };

/** A call of several items, each decided on the limit in force for the account now. */
export function itemsCall(userId: string, current: CurrentPlan, items: readonly UsageAmount[], key: string | undefined, now: Date, holdUntil?: Date): ItemsConsumption {
  return {
    userId,
    items: items.map(({ metric, amount }) => {
      const { limit } = quotaEntitlement(current.plan, current.terms, metric.code, now);
      return { ...usageRowOf(metric, current, now), amount, ceiling: usageCeiling(limit), limit };
    }),
    key,
    now,
    keyExpiresAt: keyExpiry(now),
    ...(holdUntil === undefined ? {} : { holdUntil }),
  };
}

/** A refused call's error: one refusal per item that did not fit. */
export function itemsRefused(userId: string, outcomes: readonly ItemOutcome[], quotas: readonly QuotaState[], items: readonly UsageAmount[]): QuotaExceededError {
  return new QuotaExceededError(
    userId,
    outcomes.flatMap((item, index) => (item.fits ? [] : [{ quota: quotas[index]!, requested: items[index]!.amount }])),
  );
}

function keyExpiry(now: Date): Date {
  return new Date(now.getTime() + IDEMPOTENCY_KEY_RETENTION_DAYS * 86_400_000);
}

/** Whether a call asks for what the first call under its key asked. */
export function sameItems(first: readonly { metric: string; amount: bigint }[], asked: readonly { metric: string; amount: bigint }[]): boolean {
  return first.length === asked.length && first.every((item, index) => item.metric === asked[index]!.metric && item.amount === asked[index]!.amount);
}

