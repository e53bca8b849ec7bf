import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ListPlansResponseSchema,
  WatchEntitlementsResponseSchema,
  type ListPlansRequest,
  type CheckQuotaRequest,
  type EntitlementService,
  type GetPlanRequest,
  type GetUsageRequest,
  type HasFeatureRequest,
  type IncrementUsageRequest,
  type UpgradePlanRequest,
  type ConsumeUsageRequest,
  type SetUsageRequest,
  type ReserveUsageRequest,
  type CommitReservationRequest,
  type ReleaseReservationRequest,
  type GetReservationRequest,
  type WatchEntitlementsRequest,
} from "../../gen/entitlements/v1/entitlement_service_pb.js";
import * as validate from "../domain/validation.ts";
import { InvalidArgumentError } from "../domain/errors.ts";
import { checkAmount, incrementAmount, MAX_USAGE } from "../domain/quota.ts";
import { MAX_RESERVATION_SECONDS } from "../domain/validation.ts";
import type { Entitlements } from "../app/entitlements.ts";

import { featureEntitlement } from "../domain/terms.ts";
import { AccountTermsMethods, type AccountTermsParts } from "./account-terms-methods.ts";
import type { PlanChanges } from "../app/plan-changes.ts";
import type { UsageChanges } from "../app/usage-changes.ts";
import type { Reservations } from "../app/reservations.ts";
import type { EntitlementWatches } from "../app/entitlement-watches.ts";
import { watchItemKind } from "./event-messages.ts";
import { reservationMessage } from "./reservation-messages.ts";
import { callerOf } from "../auth/gates.ts";
import type { HandlerContext } from "@connectrpc/connect";
import { catalogAnswer, planMessage, quotaStatusMessage, subscriptionMessage, type CatalogInit } from "./messages.ts";
import { featureAnswer, freshness, getPlanAnswer, quotaCheckAnswer, withFreshness } from "./fresh-answers.ts";

const listPlansResponse = (init: CatalogInit) => create(ListPlansResponseSchema, init);

/**
 * entitlements.v1.EntitlementService: validates, delegates to Entitlements (and, for per-account
 * terms, to TermsAdministration through AccountTermsMethods), converts.
 */
export class EntitlementServiceImpl extends AccountTermsMethods implements ServiceImpl<typeof EntitlementService> {
  readonly #entitlements: Entitlements;
  readonly #changes: PlanChanges;
  readonly #usageChanges: UsageChanges;
  readonly #reservations: Reservations;
  readonly #watches: EntitlementWatches;

  constructor(parts: AccountTermsParts & { readonly watches: EntitlementWatches }) {
    super(parts);
    this.#watches = parts.watches;
    this.#entitlements = parts.entitlements;
    this.#changes = parts.planChanges;
    this.#usageChanges = parts.usageChanges;
    this.#reservations = parts.reservations;
  }

  async getPlan(request: GetPlanRequest) {
    const userId = validate.userId(request.userId);
    const now = this.#entitlements.now();
    return getPlanAnswer(await this.#entitlements.currentPlan(userId, now, validate.minRevision(request.minRevision)), now);
  }

  async hasFeature(request: HasFeatureRequest) {
    const userId = validate.userId(request.userId);
    const feature = validate.catalogName(request.feature, "feature");
    const now = this.#entitlements.now();
    const current = await this.#entitlements.currentPlan(userId, now, validate.minRevision(request.minRevision));
    const { enabled, source } = featureEntitlement(current.plan, current.terms, feature, now);
    return featureAnswer(current, current.plan, !current.suspended && enabled, source);
  }

  async checkQuota(request: CheckQuotaRequest) {
    const userId = validate.userId(request.userId);
    const metric = this.#entitlements.metric(validate.catalogName(request.metric, "metric"));
    const amount = checkAmount(metric, request.amount);
    return quotaCheckAnswer(await this.#entitlements.checkQuota(userId, metric, amount, validate.minRevision(request.minRevision)));
  }

  async incrementUsage(request: IncrementUsageRequest) {
    const userId = validate.userId(request.userId);
    const metric = this.#entitlements.metric(validate.catalogName(request.metric, "metric"));
    const amount = incrementAmount(metric, request.amount);
    const idempotencyKey = validate.idempotencyKey(request.idempotencyKey);
    return withFreshness(this.#entitlements, userId, validate.minRevision(request.minRevision), async () => {
      const { quota, replayed } = await this.#entitlements.increment({ userId, metric, amount, idempotencyKey });
      return { quota: quotaStatusMessage(quota), replayed };
    });
  }

  async upgradePlan(request: UpgradePlanRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    const plan = this.#entitlements.plan(validate.catalogName(request.planCode, "plan_code"));
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const subscription = await this.#changes.changePlan(callerOf(context), userId, plan, request.durationDays);
      // The version it was subscribed to: the database's latest, which may be newer than `plan`.
      const subscribed = (await this.#entitlements.subscribedPlan(subscription)) ?? plan;
      return {
        subscription: subscriptionMessage(subscription, subscription.startedAt, subscribed.interval),
        plan: planMessage(subscribed),
      };
    });
  }

  async listPlans(request: ListPlansRequest) {
    return catalogAnswer(this.#entitlements.catalog, listPlansResponse, request.includeHidden ? "all" : "public");
  }

  async consumeUsage(request: ConsumeUsageRequest) {
    const userId = validate.userId(request.userId);
    const items = this.#items(request.items, "items", 1n);
    const key = validate.idempotencyKey(request.idempotencyKey);
    return withFreshness(this.#entitlements, userId, validate.minRevision(request.minRevision), async () => {
      const { result, replayed } = await this.#usageChanges.consume(userId, items, key);
      return { quotas: result.map(quotaStatusMessage), replayed };
    });
  }

  async reserveUsage(request: ReserveUsageRequest) {
    const userId = validate.userId(request.userId);
    const items = this.#items(request.items, "items", 1n);
    const ttlSeconds = Number(validate.unitsBetween(BigInt(request.ttlSeconds), 1n, BigInt(MAX_RESERVATION_SECONDS), "ttl_seconds"));
    const key = validate.idempotencyKey(request.idempotencyKey);
    return withFreshness(this.#entitlements, userId, validate.minRevision(request.minRevision), async () => {
      const { result, replayed } = await this.#reservations.reserve(userId, items, ttlSeconds, key);
      return { reservation: reservationMessage(result.reservation), quotas: result.quotas.map(quotaStatusMessage), replayed };
    });
  }

  async commitReservation(request: CommitReservationRequest) {
    const userId = validate.userId(request.userId);
    const id = validate.uuid(request.reservationId, "reservation_id");
    const actual = request.actual.length === 0 ? [] : this.#items(request.actual, "actual", 0n);
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const { result, replayed } = await this.#reservations.commit(userId, id, actual);
      return { reservation: reservationMessage(result.reservation), quotas: result.quotas.map(quotaStatusMessage), replayed };
    });
  }

  async releaseReservation(request: ReleaseReservationRequest) {
    const userId = validate.userId(request.userId);
    const id = validate.uuid(request.reservationId, "reservation_id");
    return withFreshness(this.#entitlements, userId, undefined, async () => {
      const { result, replayed } = await this.#reservations.release(userId, id);
      return { reservation: reservationMessage(result), replayed };
    });
  }

  async getReservation(request: GetReservationRequest) {
    const userId = validate.userId(request.userId);
    return { reservation: reservationMessage(await this.#reservations.get(userId, validate.uuid(request.reservationId, "reservation_id"))) };
  }

  /** Items of a multi-metric call (`field`), each amount at least `minAmount`, with their metrics. */
  #items(items: readonly { metric: string; amount: bigint }[], field: string, minAmount: bigint) {
    return validate.usageItems(items, MAX_USAGE, field, minAmount).map(({ metric, amount }) => ({ metric: this.#entitlements.metric(metric), amount }));
  }

  async setUsage(request: SetUsageRequest) {
    const userId = validate.userId(request.userId);
    const metric = this.#entitlements.metric(validate.catalogName(request.metric, "metric"));
    const value = validate.unitsBetween(request.value, 0n, MAX_USAGE, "value");
    const key = validate.idempotencyKey(request.idempotencyKey);
    return withFreshness(this.#entitlements, userId, validate.minRevision(request.minRevision), async () => {
      const { result, replayed } = await this.#usageChanges.setLevel(userId, metric, value, key);
      return { quota: quotaStatusMessage(result), replayed };
    });
  }

  async getUsage(request: GetUsageRequest) {
    const userId = validate.userId(request.userId);
    const now = this.#entitlements.now();
    const current = await this.#entitlements.currentPlan(userId, now, validate.minRevision(request.minRevision));
    // Usage is read now, through the call's transaction: the standing is the older of the two.
    const quotas = await this.#entitlements.quotas(userId, current, now);
    return { quotas: quotas.map(quotaStatusMessage), ...freshness(current.standing) };
  }

  async *watchEntitlements(request: WatchEntitlementsRequest, context: HandlerContext) {
    const userIds = validate.watchedUsers(request.userIds);
    const from = request.fromPosition === undefined ? undefined : validate.feedPosition(request.fromPosition, "from_position");
    const planAt = (code: string, version: number) => this.#entitlements.planAt(code, version);
    const watched = new Set(userIds);
    request.snapshotUserIds.forEach((userId, index) => {
      if (!watched.has(userId)) throw new InvalidArgumentError([{ field: `snapshot_user_ids[${index}]`, description: "must be one of user_ids" }]);
    });
    for await (const item of this.#watches.watch(userIds, from, context.signal, from === undefined ? [] : [...new Set(request.snapshotUserIds)])) {
      yield create(WatchEntitlementsResponseSchema, { kind: await watchItemKind(item, planAt, this.#entitlements.now()) });
    }
  }
}
