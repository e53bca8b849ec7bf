import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PlanSchema, ResetPeriod, type Plan as PlanMessage } from "../../gen/entitlements/v1/plan_pb.js";
import {
  SubscriptionSchema,
  SubscriptionStatus,
  type Subscription,
} from "../../gen/entitlements/v1/subscription_pb.js";
import { QuotaStatusSchema, type QuotaStatus } from "../../gen/entitlements/v1/usage_pb.js";
import { AccountSchema, AccountStatus, type Account } from "../../gen/entitlements/v1/account_pb.js";
import type { AccountRecord } from "../domain/accounts.ts";
import type { Catalog, Plan, ResetPeriod as DomainResetPeriod } from "../domain/catalog.ts";
import type { CurrentPlan } from "../entitlements.ts";
import type { QuotaState } from "../domain/quota.ts";
import { subscriptionStatus, type SubscriptionRecord } from "../domain/subscriptions.ts";

/** Conversions from domain values to the messages of the contract. */

const RESET_PERIODS: Record<DomainResetPeriod, ResetPeriod> = {
  day: ResetPeriod.DAY,
  month: ResetPeriod.MONTH,
  never: ResetPeriod.NEVER,
};

const SUBSCRIPTION_STATUSES = {
  active: SubscriptionStatus.ACTIVE,
  expired: SubscriptionStatus.EXPIRED,
  replaced: SubscriptionStatus.REPLACED,
} as const;

/** Plans are immutable catalog entries: each is converted once (the catalog refresh makes new ones). */
const planMessages = new WeakMap<Plan, PlanMessage>();

export function planMessage(plan: Plan): PlanMessage {
  let message = planMessages.get(plan);
  if (message === undefined) {
    message = convertPlan(plan);
    planMessages.set(plan, message);
  }
  return message;
}

function convertPlan(plan: Plan): PlanMessage {
  return create(PlanSchema, {
    code: plan.code,
    displayName: plan.displayName,
    priceCents: plan.priceCents,
    currency: plan.currency,
    rateLimitMultiplier: plan.rateLimitMultiplier,
    features: { ...plan.features },
    quotas: plan.quotas.map((quota) => ({
      metric: quota.metric,
      limit: quota.limit ?? undefined,
      resetPeriod: RESET_PERIODS[quota.resetPeriod],
    })),
  });
}

export function subscriptionMessage(subscription: SubscriptionRecord, at: Date): Subscription {
  return create(SubscriptionSchema, {
    userId: subscription.userId,
    planCode: subscription.planCode,
    status: SUBSCRIPTION_STATUSES[subscriptionStatus(subscription, at)],
    startedAt: timestampFromDate(subscription.startedAt),
    expiresAt: subscription.expiresAt === null ? undefined : timestampFromDate(subscription.expiresAt),
    endedAt: subscription.endedAt === null ? undefined : timestampFromDate(subscription.endedAt),
  });
}

export function quotaStatusMessage(quota: QuotaState): QuotaStatus {
  return create(QuotaStatusSchema, {
    metric: quota.metric,
    used: quota.used,
    limit: quota.limit ?? undefined,
    remaining: quota.remaining ?? undefined,
    periodStart: quota.period === null ? undefined : timestampFromDate(quota.period.start),
    resetsAt: quota.period === null ? undefined : timestampFromDate(quota.period.end),
  });
}

/** A user's plan with the subscription behind it (absent on the default free plan). */
export function currentPlanMessages(current: CurrentPlan, at: Date) {
  return {
    plan: planMessage(current.plan),
    subscription: current.subscription === undefined ? undefined : subscriptionMessage(current.subscription, at),
    accountStatus: current.suspended ? AccountStatus.SUSPENDED : AccountStatus.ACTIVE,
  };
}

export function accountMessage(account: AccountRecord): Account {
  return create(AccountSchema, {
    userId: account.userId,
    email: account.email ?? "",
    status: account.status === "suspended" ? AccountStatus.SUSPENDED : AccountStatus.ACTIVE,
    isSuperadmin: account.isSuperadmin,
    createdAt: timestampFromDate(account.createdAt),
    suspendedReason: account.suspendedReason ?? "",
  });
}

/** The catalog, cheapest plan first. */
export function catalogMessages(catalog: Catalog) {
  return { plans: catalog.plans.map(planMessage) };
}
