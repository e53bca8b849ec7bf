import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  EntitlementService,
  type ClearOverrideRequest,
  type GrantUsageRequest,
  type ListGrantsRequest,
  type ListOverridesRequest,
  type RevokeGrantRequest,
  type SetFeatureOverrideRequest,
  type SetQuotaOverrideRequest,
  type StartTrialRequest,
  type SchedulePlanChangeRequest,
  type CancelScheduledChangeRequest,
  type RefundUsageRequest,
} from "../../gen/entitlements/v1/entitlement_service_pb.js";
import type { Entitlements } from "../app/entitlements.ts";
import type { PlanChanges } from "../app/plan-changes.ts";
import type { Reservations } from "../app/reservations.ts";
import type { UsageChanges } from "../app/usage-changes.ts";
import type { TermsAdministration } from "../app/terms-administration.ts";
import { callerOf } from "../auth/gates.ts";
import { auditReason } from "../domain/accounts.ts";
import { InvalidArgumentError } from "../domain/errors.ts";
import { MAX_USAGE } from "../domain/quota.ts";
import { futureExpiry } from "../domain/terms.ts";
import * as validate from "../domain/validation.ts";
import { grantMessage, overrideMessage } from "./terms-messages.ts";
import { planMessage, quotaStatusMessage, scheduledChangeMessage, subscriptionMessage } from "./messages.ts";
import { withFreshness } from "./fresh-answers.ts";

/** The EntitlementService RPCs of per-account terms: overrides and usage grants. */
export type AccountTermsRpcs = Pick<
  ServiceImpl<typeof EntitlementService>,
  | "setFeatureOverride"
  | "setQuotaOverride"
  | "clearOverride"
  | "listOverrides"
  | "grantUsage"
  | "listGrants"
  | "revokeGrant"
  | "startTrial"
  | "schedulePlanChange"
  | "cancelScheduledChange"
  | "refundUsage"
>;

/** The RPCs that superadmins may call too (with their user token), besides backends. */
export const ACCOUNT_TERMS_METHODS = [
  EntitlementService.method.setFeatureOverride,
  EntitlementService.method.setQuotaOverride,
  EntitlementService.method.clearOverride,
  EntitlementService.method.listOverrides,
  EntitlementService.method.grantUsage,
  EntitlementService.method.listGrants,
  EntitlementService.method.revokeGrant,
  EntitlementService.method.startTrial,
  EntitlementService.method.schedulePlanChange,
  EntitlementService.method.cancelScheduledChange,
  EntitlementService.method.refundUsage,
];

/** What the per-account terms RPCs delegate to. */
export type AccountTermsParts = {
  readonly entitlements: Entitlements;
  readonly terms: TermsAdministration;
  readonly planChanges: PlanChanges;
  readonly usageChanges: UsageChanges;
  readonly reservations: Reservations;
};

/** Validates, delegates to TermsAdministration and PlanChanges with the caller as actor, converts. */
export class AccountTermsMethods implements AccountTermsRpcs {
  readonly #terms: TermsAdministration;
  readonly #planChanges: PlanChanges;
  readonly #entitlements: Entitlements;
  readonly #usageChanges: UsageChanges;

  constructor(parts: AccountTermsParts) {
    this.#terms = parts.terms;
    this.#planChanges = parts.planChanges;
    this.#entitlements = parts.entitlements;
    this.#usageChanges = parts.usageChanges;
  }

  async setFeatureOverride(request: SetFeatureOverrideRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const override = await this.#terms.setOverride(callerOf(context), {
        userId,
        kind: "feature",
        target: validate.catalogName(request.feature, "feature"),
        enabled: request.enabled,
        expiresAt: this.#expiry(request.expiresAt),
        reason: auditReason(request.reason),
      });
      return { override: overrideMessage(override) };
    });
  }

  async setQuotaOverride(request: SetQuotaOverrideRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const override = await this.#terms.setOverride(callerOf(context), {
        userId,
        kind: "quota",
        target: validate.catalogName(request.metric, "metric"),
        limit: request.limit === undefined ? null : validate.unitsBetween(request.limit, 0n, MAX_USAGE, "limit"),
        expiresAt: this.#expiry(request.expiresAt),
        reason: auditReason(request.reason),
      });
      return { override: overrideMessage(override) };
    });
  }

  async clearOverride(request: ClearOverrideRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const { target } = request;
      if (target.case === undefined) {
        throw new InvalidArgumentError([{ field: "target", description: "must name a feature or a metric" }]);
      }
      const kind = target.case === "feature" ? "feature" : "quota";
      const cleared = await this.#terms.clearOverride(callerOf(context), userId, kind, validate.catalogName(target.value, target.case));
      return { cleared: cleared === null ? undefined : overrideMessage(cleared) };
    });
  }

  async listOverrides(request: ListOverridesRequest) {
    const overrides = await this.#terms.listOverrides(validate.userId(request.userId));
    return { overrides: overrides.map((override) => overrideMessage(override)) };
  }

  async grantUsage(request: GrantUsageRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const { grant, replayed } = await this.#terms.grantUsage(callerOf(context), {
        userId,
        metric: validate.catalogName(request.metric, "metric"),
        amount: validate.unitsBetween(request.amount, 1n, MAX_USAGE, "amount"),
        expiresAt: this.#expiry(request.expiresAt),
        idempotencyKey: validate.requiredIdempotencyKey(request.idempotencyKey),
        reason: auditReason(request.reason),
      });
      return { grant: grantMessage(grant), replayed };
    });
  }

  async listGrants(request: ListGrantsRequest) {
    const grants = await this.#terms.listGrants(validate.userId(request.userId), request.includeSpent);
    return { grants: grants.map((grant) => grantMessage(grant)) };
  }

  async revokeGrant(request: RevokeGrantRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const grant = await this.#terms.revokeGrant(callerOf(context), userId, validate.uuid(request.grantId, "grant_id"));
      return { grant: grantMessage(grant) };
    });
  }

  async startTrial(request: StartTrialRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const plan = this.#entitlements.plan(validate.catalogName(request.planCode, "plan_code"));
      const trial = await this.#planChanges.startTrial(callerOf(context), userId, plan, request.days);
      const tried = (await this.#entitlements.subscribedPlan(trial)) ?? plan;
      return { subscription: subscriptionMessage(trial, trial.startedAt, tried.interval), plan: planMessage(tried) };
    });
  }

  async schedulePlanChange(request: SchedulePlanChangeRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const plan = this.#entitlements.plan(validate.catalogName(request.planCode, "plan_code"));
      const { when } = request;
      if (when.case === undefined || (when.case === "atPeriodEnd" && !when.value)) {
        throw new InvalidArgumentError([{ field: "when", description: "must be at_period_end: true or a time `at`" }]);
      }
      const time = when.case === "at" ? { at: timestampDate(when.value) } : ({ atPeriodEnd: true } as const);
      const scheduled = await this.#planChanges.schedule(callerOf(context), userId, plan, time);
      return { scheduledChange: scheduledChangeMessage(scheduled) };
    });
  }

  async cancelScheduledChange(request: CancelScheduledChangeRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const cancelled = await this.#planChanges.cancelScheduled(callerOf(context), userId);
      return { cancelled: cancelled === null ? undefined : scheduledChangeMessage(cancelled) };
    });
  }

  async refundUsage(request: RefundUsageRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const { result, replayed } = await this.#usageChanges.refund(callerOf(context), {
        userId,
        metric: this.#entitlements.metric(validate.catalogName(request.metric, "metric")),
        amount: validate.unitsBetween(request.amount, 1n, MAX_USAGE, "amount"),
        key: validate.requiredIdempotencyKey(request.idempotencyKey),
        reason: auditReason(request.reason),
      });
      return { quota: quotaStatusMessage(result), replayed };
    });
  }

  #expiry(expiresAt: Timestamp | undefined): Date | null {
    return futureExpiry(expiresAt === undefined ? undefined : timestampDate(expiresAt), this.#entitlements.now());
  }
}
