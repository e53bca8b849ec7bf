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

/** The last check of each metric on a cached standing, and its answer. */
type QuotaCheckSlot = { last?: { readonly check: QuotaCheck; readonly answer: CheckQuotaResponse } };
const quotaCheckAnswers = new WeakMap<object, Map<unknown, QuotaCheckSlot>>();

/** Whether two checks on one standing answer the same: outcome, quota state and `asOf`. */
function answersAlike(a: QuotaCheck, b: QuotaCheck): boolean {
  const [x, y] = [a.quota, b.quota];
  return (
    a.denial === b.denial &&
    a.asOf.getTime() === b.asOf.getTime() &&
    x.used === y.used &&
    x.limit === y.limit &&
    x.remaining === y.remaining &&
    x.limitSource === y.limitSource &&
    x.grantRemaining === y.grantRemaining &&
    x.reserved === y.reserved &&
    x.period?.start.getTime() === y.period?.start.getTime() &&
    x.period?.end.getTime() === y.period?.end.getTime()
  );
}

/**
 * CheckQuota's answer: repeated checks of a user answered from the same cached rows find the same
 * quota state, outcome and freshness, and share the answer made (and encoded) for the first of
 * them. Kept per standing and metric, compared field by field: no key is built for a call.
 */
export function quotaCheckAnswer(check: QuotaCheck): CheckQuotaResponse {
  const slot = memoized<QuotaCheckSlot>(quotaCheckAnswers, check.standing, check.quota.metric, () => ({}));
  if (slot.last !== undefined && answersAlike(slot.last.check, check)) return slot.last.answer;
  const { denial, quota, standing, asOf } = check;
  const denialReason = denial === undefined ? DenialReason.UNSPECIFIED : denial === "suspended" ? DenialReason.SUSPENDED : DenialReason.QUOTA;
  const answer = share(create(CheckQuotaResponseSchema, { allowed: denial === undefined, quota: quotaStatusMessage(quota), denialReason, ...freshness(standing, asOf) }));
  slot.last = { check, answer };
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
