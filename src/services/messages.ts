import { create, type Message } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { BillingInterval, PlanSchema, ResetPeriod, type Plan as PlanMessage } from "../../gen/entitlements/v1/plan_pb.js";
import {
  ScheduledChangeSchema,
  SubscriptionSchema,
  SubscriptionStatus,
  type ScheduledChange as ScheduledChangeMessage,
  type Subscription,
} from "../../gen/entitlements/v1/subscription_pb.js";
import { QuotaStatusSchema, type QuotaStatus } from "../../gen/entitlements/v1/usage_pb.js";
import { AccountSchema, AccountStatus, type Account } from "../../gen/entitlements/v1/account_pb.js";
import type { AccountRecord } from "../domain/accounts.ts";
import type { BillingInterval as BillingIntervalName, Catalog, Plan, ResetPeriod as DomainResetPeriod } from "../domain/catalog.ts";
import { billingPeriodContaining } from "../domain/periods.ts";
import type { CurrentPlan } from "../app/current-plan.ts";
import type { QuotaState } from "../domain/quota.ts";
import { memoized, share } from "../transport/shared-answers.ts";
import { subscriptionStatus, type ScheduledChange, type SubscriptionRecord } from "../domain/subscriptions.ts";
import { ENTITLEMENT_SOURCES } from "./terms-messages.ts";

/** Conversions from domain values to the messages of the contract. */

const RESET_PERIODS: Record<DomainResetPeriod, ResetPeriod> = {
  day: ResetPeriod.DAY,
  week: ResetPeriod.WEEK,
  month: ResetPeriod.MONTH,
  year: ResetPeriod.YEAR,
  never: ResetPeriod.NEVER,
};

const SUBSCRIPTION_STATUSES = {
  active: SubscriptionStatus.ACTIVE,
  trialing: SubscriptionStatus.TRIALING,
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
    hidden: plan.visibility === "hidden",
    version: plan.version,
    interval: plan.interval === "year" ? BillingInterval.YEAR : BillingInterval.MONTH,
    trialDays: plan.trialDays ?? undefined,
  });
}

/**
 * A subscription as of `at`; with the interval of the plan version it is on, an active one
 * carries its current billing period (a trial: the trial).
 */
export function subscriptionMessage(subscription: SubscriptionRecord, at: Date, interval?: BillingIntervalName): Subscription {
  const status = subscriptionStatus(subscription, at);
  const trialEndsAt = subscription.trialEndsAt ?? null;
  const period =
    status === "trialing" && trialEndsAt !== null
      ? { start: subscription.startedAt, end: trialEndsAt }
      : interval === undefined || status !== "active"
        ? undefined
        : billingPeriodContaining(subscription.startedAt, interval, at);
  return create(SubscriptionSchema, {
    userId: subscription.userId,
    planCode: subscription.planCode,
    planVersion: subscription.planVersion,
    status: SUBSCRIPTION_STATUSES[status],
    startedAt: timestampFromDate(subscription.startedAt),
    expiresAt: subscription.expiresAt === null ? undefined : timestampFromDate(subscription.expiresAt),
    endedAt: subscription.endedAt === null ? undefined : timestampFromDate(subscription.endedAt),
    currentPeriodStart: period === undefined ? undefined : timestampFromDate(period.start),
    currentPeriodEnd: period === undefined ? undefined : timestampFromDate(period.end),
    trialEndsAt: trialEndsAt === null ? undefined : timestampFromDate(trialEndsAt),
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
    limitSource: ENTITLEMENT_SOURCES[quota.limitSource],
    grantRemaining: quota.grantRemaining,
    reserved: quota.reserved,
  });
}

/**
 * Shared answers by what they are built from (a plan, a catalog), then by the response made or
 * the outcome.
 */
type Answers = WeakMap<object, Map<unknown, Message>>;

/** What `build` makes from `source` as `variant`, once while `source` lives: frozen, shared. */
function sharedAnswer<M extends Message>(answers: Answers, source: object, variant: unknown, build: () => M): M {
  return memoized(answers, source, variant, () => share(build())) as M;
}

export type CurrentPlanInit = ReturnType<typeof currentPlanMessages>;
export type CatalogInit = ReturnType<typeof catalogMessages>;

const activePlanAnswers: Answers = new WeakMap();
const suspendedPlanAnswers: Answers = new WeakMap();
const catalogAnswers: Answers = new WeakMap();
const allPlansAnswers: Answers = new WeakMap();

/**
 * A user's plan as the response `response` makes (GetPlan's, GetMySubscription's). Users without
 * a subscription (the default free plan) all get one shared answer per plan and account status;
 * `response` must be the same function on every call for that.
 */
export function currentPlanAnswer<M extends Message>(current: CurrentPlan, at: Date, response: (init: CurrentPlanInit) => M): M {
  if (current.subscription !== undefined || current.scheduledChange !== undefined) return response(currentPlanMessages(current, at));
  const answers = current.suspended ? suspendedPlanAnswers : activePlanAnswers;
  return sharedAnswer(answers, current.plan, response, () => response(currentPlanMessages(current, at)));
}

/**
 * The catalog as the response `response` makes (ListPlans'): its public plans, or every plan
 * (`which` "all"); one shared answer per catalog and choice.
 */
export function catalogAnswer<M extends Message>(catalog: Catalog, response: (init: CatalogInit) => M, which: "public" | "all" = "public"): M {
  return sharedAnswer(which === "all" ? allPlansAnswers : catalogAnswers, catalog, response, () => response(catalogMessages(which === "all" ? catalog.plans : catalog.publicPlans)));
}

/** A user's plan with the subscription behind it (absent on the default free plan). */
export function currentPlanMessages(current: CurrentPlan, at: Date) {
  return {
    plan: planMessage(current.plan),
    subscription: current.subscription === undefined ? undefined : subscriptionMessage(current.subscription, at, current.plan.interval),
    accountStatus: current.suspended ? AccountStatus.SUSPENDED : AccountStatus.ACTIVE,
    scheduledChange: current.scheduledChange === undefined ? undefined : scheduledChangeMessage(current.scheduledChange),
  };
}

export function scheduledChangeMessage(change: ScheduledChange): ScheduledChangeMessage {
  return create(ScheduledChangeSchema, { planCode: change.planCode, effectiveAt: timestampFromDate(change.effectiveAt) });
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

/** Plans as a catalog answer lists them. */
function catalogMessages(plans: readonly Plan[]) {
  return { plans: plans.map(planMessage) };
}
