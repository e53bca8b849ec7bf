import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  GetPlanResponseSchema,
  ListPlansResponseSchema,
  type ListPlansRequest,
  type CheckQuotaRequest,
  type EntitlementService,
  type GetPlanRequest,
  type GetUsageRequest,
  type HasFeatureRequest,
  type IncrementUsageRequest,
  type UpgradePlanRequest,
} from "../../gen/entitlements/v1/entitlement_service_pb.js";
import * as validate from "../domain/validation.ts";
import { checkAmount, incrementAmount } from "../domain/quota.ts";
import type { Entitlements } from "../app/entitlements.ts";
import {
  catalogAnswer,
  currentPlanAnswer,
  featureAnswer,
  planMessage,
  quotaCheckAnswer,
  quotaStatusMessage,
  subscriptionMessage,
  type CatalogInit,
  type CurrentPlanInit,
} from "./messages.ts";

const getPlanResponse = (init: CurrentPlanInit) => create(GetPlanResponseSchema, init);
const listPlansResponse = (init: CatalogInit) => create(ListPlansResponseSchema, init);

/** entitlements.v1.EntitlementService: validates, delegates to Entitlements, converts. */
export class EntitlementServiceImpl implements ServiceImpl<typeof EntitlementService> {
  readonly #entitlements: Entitlements;

  constructor(entitlements: Entitlements) {
    this.#entitlements = entitlements;
  }

  async getPlan(request: GetPlanRequest) {
    const userId = validate.userId(request.userId);
    const now = this.#entitlements.now();
    return currentPlanAnswer(await this.#entitlements.currentPlan(userId, now), now, getPlanResponse);
  }

  async hasFeature(request: HasFeatureRequest) {
    const userId = validate.userId(request.userId);
    const feature = validate.catalogName(request.feature, "feature");
    const { plan, suspended } = await this.#entitlements.currentPlan(userId, this.#entitlements.now());
    return featureAnswer(plan, !suspended && plan.features[feature] === true);
  }

  async checkQuota(request: CheckQuotaRequest) {
    const userId = validate.userId(request.userId);
    const metric = this.#entitlements.metric(validate.catalogName(request.metric, "metric"));
    const amount = checkAmount(metric, request.amount);
    const { allowed, quota } = await this.#entitlements.checkQuota(userId, metric, amount);
    return quotaCheckAnswer(allowed, quota);
  }

  async incrementUsage(request: IncrementUsageRequest) {
    const userId = validate.userId(request.userId);
    const metric = this.#entitlements.metric(validate.catalogName(request.metric, "metric"));
    const amount = incrementAmount(metric, request.amount);
    const idempotencyKey = validate.idempotencyKey(request.idempotencyKey);
    const { quota, replayed } = await this.#entitlements.increment({ userId, metric, amount, idempotencyKey });
    return { quota: quotaStatusMessage(quota), replayed };
  }

  async upgradePlan(request: UpgradePlanRequest) {
    const userId = validate.userId(request.userId);
    const plan = this.#entitlements.plan(validate.catalogName(request.planCode, "plan_code"));
    const subscription = await this.#entitlements.changePlan(userId, plan, request.durationDays);
    // The version it was subscribed to: the database's latest, which may be newer than `plan`.
    const subscribed = (await this.#entitlements.subscribedPlan(subscription)) ?? plan;
    return {
      subscription: subscriptionMessage(subscription, subscription.startedAt, subscribed.interval),
      plan: planMessage(subscribed),
    };
  }

  async listPlans(request: ListPlansRequest) {
    return catalogAnswer(this.#entitlements.catalog, listPlansResponse, request.includeHidden ? "all" : "public");
  }

  async getUsage(request: GetUsageRequest) {
    const userId = validate.userId(request.userId);
    const now = this.#entitlements.now();
    const { plan } = await this.#entitlements.currentPlan(userId, now);
    const quotas = await this.#entitlements.quotas(userId, plan, now);
    return { quotas: quotas.map(quotaStatusMessage) };
  }
}
