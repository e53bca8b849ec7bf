import { create } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  CheckQuotaResponseSchema,
  DenialReason,
  GetPlanResponseSchema,
  HasFeatureResponseSchema,
  type CheckQuotaResponse,
  type GetPlanResponse,
  type HasFeatureResponse,
} from "../../gen/entitlements/v1/entitlement_service_pb.js";
import type { CurrentPlan } from "../app/current-plan.ts";
import type { Entitlements, QuotaCheck } from "../app/entitlements.ts";
import type { AccountStanding } from "../db/accounts.ts";
import type { Plan } from "../domain/catalog.ts";
import type { EntitlementSource } from "../domain/terms.ts";
import { memoized, share } from "../transport/shared-answers.ts";
import { currentPlanMessages, quotaStatusMessage } from "./messages.ts";
import { ENTITLEMENT_SOURCES } from "./terms-messages.ts";

/**
 * Answers that state their freshness (the account's revision and when its standing was read):
 * each is shared by every call answered from the same cached standing, frozen, and so encoded
 * once (transport/shared-answers.ts).
 */

/** The freshness fields of an answer: the account's revision and `asOf` (default: when its standing was read). */
export function freshness(standing: Pick<AccountStanding, "revision" | "readAt">, asOf: Date = standing.readAt): { revision: bigint; asOf: Timestamp } {
  return { revision: standing.revision, asOf: timestampFromDate(asOf) };
}

const planAnswers = new WeakMap<object, Map<unknown, GetPlanResponse>>();

/** GetPlan's answer; one per standing and plan for users without a subscription or a pending change. */
export function getPlanAnswer(current: CurrentPlan, at: Date): GetPlanResponse {
  const build = () => create(GetPlanResponseSchema, { ...currentPlanMessages(current, at), ...freshness(current.standing) });
  // A subscription's answer holds its current billing period: built for the instant asked about.
  if (current.subscription !== undefined || current.scheduledChange !== undefined) return build();
  return memoized(planAnswers, current.standing, current.plan, () => share(build()));
}

const featureAnswers = new WeakMap<object, Map<unknown, (HasFeatureResponse | undefined)[]>>();

/** HasFeature's answer on `current`: one per standing, plan, outcome and source. */
export function featureAnswer(current: CurrentPlan, plan: Plan, enabled: boolean, source: EntitlementSource): HasFeatureResponse {
  const answers = memoized(featureAnswers, current.standing, plan, () => []);
  const variant = (enabled ? 1 : 0) + (source === "override" ? 2 : 0);
  return (answers[variant] ??= share(
    create(HasFeatureResponseSchema, { enabled, planCode: plan.code, source: ENTITLEMENT_SOURCES[source], ...freshness(current.standing) }),
  ));
}

/** CheckQuota answers by what they say; cleared when full, as each is cheap to make again. */
const quotaCheckAnswers = new Map<string, CheckQuotaResponse>();
const QUOTA_CHECK_ANSWERS_MAX = 4096;

/**
 * CheckQuota's answer: shared by every check that finds the same quota state (metric, amount
 * used, limit, period, grants, reservations), outcome and freshness, as repeated checks of a user
 * answered from the same cached rows do, so it is built and encoded once rather than per call.
 */
export function quotaCheckAnswer(check: QuotaCheck): CheckQuotaResponse {
  const { denial, quota, revision, asOf } = check;
  const key = `${denial}\u0000${quota.metric}\u0000${quota.used}\u0000${quota.limit}\u0000${quota.period?.start.getTime()}\u0000${quota.period?.end.getTime()}\u0000${quota.limitSource}\u0000${quota.grantRemaining}\u0000${quota.reserved}\u0000${revision}\u0000${asOf.getTime()}`;
  let answer = quotaCheckAnswers.get(key);
  if (answer === undefined) {
    if (quotaCheckAnswers.size >= QUOTA_CHECK_ANSWERS_MAX) quotaCheckAnswers.clear();
    const denialReason = denial === undefined ? DenialReason.UNSPECIFIED : denial === "suspended" ? DenialReason.SUSPENDED : DenialReason.QUOTA;
    answer = share(create(CheckQuotaResponseSchema, { allowed: denial === undefined, quota: quotaStatusMessage(quota), denialReason, revision, asOf: timestampFromDate(asOf) }));
    quotaCheckAnswers.set(key, answer);
  }
  return answer;
}

/**
 * A write's answer with the account's freshness after it. With `minRevision`, the write decides on
 * a standing at least that fresh (read afresh when the cached one is older).
 */
export async function withFreshness<T extends object>(
  entitlements: Entitlements,
  userId: string,
  minRevision: bigint | undefined,
  write: () => Promise<T>,
): Promise<T & { revision: bigint; asOf: Timestamp }> {
  if (minRevision !== undefined) await entitlements.standing(userId, minRevision);
  const answer = await write();
  return { ...answer, ...freshness(await entitlements.standing(userId)) };
}
