import type { CommonQueryMethods } from "slonik";
import { callDeadline } from "../db/call-transaction.ts";
import type { IncrementBatcher } from "../db/increment-batcher.ts";
import { consumeUsageOnce, type IdempotentIncrement } from "../db/idempotency-keys.ts";
import { decideConsumption, type ConsumptionDecisionAmounts } from "../db/usage-counters.ts";
import type { Metric } from "../domain/catalog.ts";
import { IdempotencyKeyReusedError } from "../domain/errors.ts";
import { QuotaExceededError, quotaOf, replayedQuota, usageCeiling, usageRowOf, type QuotaState } from "../domain/quota.ts";
import { quotaEntitlement } from "../domain/terms.ts";
import type { CurrentPlan } from "./current-plan.ts";

/** How long an idempotency key is remembered. */
export const IDEMPOTENCY_KEY_RETENTION_DAYS = 35;

export type Increment = {
  readonly userId: string;
  readonly metric: Metric;
  readonly amount: bigint;
  readonly idempotencyKey: string | undefined;
};

export type IncrementResult = {
  readonly quota: QuotaState;
  readonly replayed: boolean;
};

/**
 * IncrementUsage's decision on the account's `current` plan: check-and-consume in one statement
 * (with the batcher, group commit bounded by the caller's deadline); with a key, exactly once
 * across retries. Refused increments throw QuotaExceededError.
 */
export async function decideIncrement(
  queries: { readonly db: CommonQueryMethods; readonly batcher: IncrementBatcher | undefined },
  increment: Increment,
  current: CurrentPlan,
  now: Date,
): Promise<{ result: IncrementResult; drewGrants: boolean }> {
  const { db, batcher } = queries;
  const { limit } = quotaEntitlement(current.plan, current.terms, increment.metric.code, now);
  const consumption = {
    userId: increment.userId,
    ...usageRowOf(increment.metric, current, now),
    amount: increment.amount,
    ceiling: usageCeiling(limit),
    now,
  };
  const key = increment.idempotencyKey;
  let outcome: { readonly kind: "granted" | "refused" } & ConsumptionDecisionAmounts;
  if (key !== undefined) {
    const expiresAt = new Date(now.getTime() + IDEMPOTENCY_KEY_RETENTION_DAYS * 86_400_000);
    const keyed = { ...consumption, key, limit, expiresAt };
    const once = batcher === undefined ? await consumeUsageOnce(db, keyed) : await batcher.submitKeyed(keyed, callDeadline());
    if (once.kind === "replayed") {
      return { result: { quota: replay(increment, key, once.first, current, now), replayed: true }, drewGrants: false };
    }
    outcome = once;
  } else {
    const { granted, ...amounts } = await (batcher === undefined ? decideConsumption(db, consumption) : batcher.submit(consumption, callDeadline()));
    outcome = { kind: granted ? "granted" : "refused", ...amounts };
  }
  const quota = quotaOf(increment.metric, current, outcome.used, now, outcome.grantRemaining, outcome.reserved);
  if (outcome.kind === "refused") {
    throw new QuotaExceededError(increment.userId, [{ quota, requested: increment.amount }]);
  }
  return { result: { quota, replayed: false }, drewGrants: outcome.grantRemaining !== null };
}

/** The first result under a key: its usage and limit, with the grants the account holds now. */
function replay(increment: Increment, key: string, first: IdempotentIncrement, current: CurrentPlan, now: Date): QuotaState {
  if (first.metric !== increment.metric.code || first.amount !== increment.amount) {
    throw new IdempotencyKeyReusedError(key);
  }
  return replayedQuota(increment.metric, current, first, now);
}
