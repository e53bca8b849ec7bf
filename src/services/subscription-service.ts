import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  GetMySubscriptionResponseSchema,
  SubscriptionService,
  SubscriptionServiceListPlansResponseSchema,
} from "../../gen/entitlements/v1/subscription_service_pb.js";
import { authenticatedUser } from "../auth/gates.ts";
import type { Entitlements } from "../app/entitlements.ts";
import type { TermsAdministration } from "../app/terms-administration.ts";
import { catalogAnswer, currentPlanAnswer, currentPlanMessages, quotaStatusMessage, type CatalogInit, type CurrentPlanInit } from "./messages.ts";
import { grantMessage, overrideMessage } from "./terms-messages.ts";

const mySubscriptionResponse = (init: CurrentPlanInit) => create(GetMySubscriptionResponseSchema, init);
const listPlansResponse = (init: CatalogInit) => create(SubscriptionServiceListPlansResponseSchema, init);

/** Methods of SubscriptionService that need no credential. */
export const PUBLIC_SUBSCRIPTION_METHODS = [SubscriptionService.method.listPlans];

/** entitlements.v1.SubscriptionService: the caller's own data, the user taken from their JWT. */
export class SubscriptionServiceImpl implements ServiceImpl<typeof SubscriptionService> {
  readonly #entitlements: Entitlements;
  readonly #terms: TermsAdministration;

  constructor(entitlements: Entitlements, terms: TermsAdministration) {
    this.#entitlements = entitlements;
    this.#terms = terms;
  }

  async getMySubscription(_: unknown, context: HandlerContext) {
    const { userId } = authenticatedUser(context);
    const now = this.#entitlements.now();
    const current = await this.#entitlements.currentPlan(userId, now);
    if (current.terms.overrides.length === 0 && current.terms.grants.length === 0) {
      return currentPlanAnswer(current, now, mySubscriptionResponse);
    }
    // The standing holds what decisions need; the user's view of their terms reads them whole.
    const [overrides, grants] = await Promise.all([this.#terms.listOverrides(userId), this.#terms.listGrants(userId, false)]);
    return create(GetMySubscriptionResponseSchema, {
      ...currentPlanMessages(current, now),
      overrides: overrides.map((override) => overrideMessage(override, "without reason")),
      grants: grants.map((grant) => grantMessage(grant, "without reason")),
    });
  }

  async getMyUsage(_: unknown, context: HandlerContext) {
    const { userId } = authenticatedUser(context);
    const now = this.#entitlements.now();
    const quotas = await this.#entitlements.quotas(userId, await this.#entitlements.currentPlan(userId, now), now);
    return { quotas: quotas.map(quotaStatusMessage) };
  }

  async listPlans() {
    return catalogAnswer(this.#entitlements.catalog, listPlansResponse);
  }
}
