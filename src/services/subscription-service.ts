import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  GetMySubscriptionResponseSchema,
  SubscriptionService,
  SubscriptionServiceListPlansResponseSchema,
} from "../../gen/entitlements/v1/subscription_service_pb.js";
import { authenticatedUser } from "../auth/gates.ts";
import type { Entitlements } from "../app/entitlements.ts";
import { catalogAnswer, currentPlanAnswer, quotaStatusMessage, type CatalogInit, type CurrentPlanInit } from "./messages.ts";

const mySubscriptionResponse = (init: CurrentPlanInit) => create(GetMySubscriptionResponseSchema, init);
const listPlansResponse = (init: CatalogInit) => create(SubscriptionServiceListPlansResponseSchema, init);

/** Methods of SubscriptionService that need no credential. */
export const PUBLIC_SUBSCRIPTION_METHODS = [SubscriptionService.method.listPlans];

/** entitlements.v1.SubscriptionService: the caller's own data, the user taken from their JWT. */
export class SubscriptionServiceImpl implements ServiceImpl<typeof SubscriptionService> {
  readonly #entitlements: Entitlements;

  constructor(entitlements: Entitlements) {
    this.#entitlements = entitlements;
  }

  async getMySubscription(_: unknown, context: HandlerContext) {
    const { userId } = authenticatedUser(context);
    const now = this.#entitlements.now();
    return currentPlanAnswer(await this.#entitlements.currentPlan(userId, now), now, mySubscriptionResponse);
  }

  async getMyUsage(_: unknown, context: HandlerContext) {
    const { userId } = authenticatedUser(context);
    const now = this.#entitlements.now();
    const { plan } = await this.#entitlements.currentPlan(userId, now);
    const quotas = await this.#entitlements.quotas(userId, plan, now);
    return { quotas: quotas.map(quotaStatusMessage) };
  }

  async listPlans() {
    return catalogAnswer(this.#entitlements.catalog, listPlansResponse);
  }
}
