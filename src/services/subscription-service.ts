import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  GetMySubscriptionResponseSchema,
  SubscriptionService,
  SubscriptionServiceListPlansResponseSchema,
  WatchMySubscriptionResponseSchema,
  type WatchMySubscriptionRequest,
} from "../../gen/entitlements/v1/subscription_service_pb.js";
import { authenticatedUser } from "../auth/gates.ts";
import type { Entitlements } from "../app/entitlements.ts";
import type { TermsAdministration } from "../app/terms-administration.ts";
import type { EntitlementWatches } from "../app/entitlement-watches.ts";
import type { UserIdentity } from "../domain/accounts.ts";
import * as validate from "../domain/validation.ts";
import { watchItemKind } from "./event-messages.ts";
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
  readonly #watches: EntitlementWatches;
  /** Whether the account still honours the caller's token (false once their sessions were revoked). */
  readonly #admit: (user: UserIdentity) => Promise<boolean>;

  constructor(entitlements: Entitlements, terms: TermsAdministration, watches: EntitlementWatches, admit: (user: UserIdentity) => Promise<boolean>) {
    this.#entitlements = entitlements;
    this.#terms = terms;
    this.#watches = watches;
    this.#admit = admit;
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

  /**
   * The caller's own watch. A stream outlives the check of the token that opened it: it ends when
   * the token expires (checked at each message, by the clock JWTs are checked by) and when the
   * caller's sessions are revoked (checked at each heartbeat).
   */
  async *watchMySubscription(request: WatchMySubscriptionRequest, context: HandlerContext) {
    const user = authenticatedUser(context);
    const from = request.fromPosition === undefined ? undefined : validate.feedPosition(request.fromPosition, "from_position");
    const planAt = (code: string, version: number) => this.#entitlements.planAt(code, version);
    for await (const item of this.#watches.watchOwn(user.userId, from, context.signal)) {
      if (user.expiresAt !== undefined && Date.now() >= user.expiresAt.getTime()) {
        throw new ConnectError("the user token expired: reconnect with a fresh one, from the last position received", Code.Unauthenticated);
      }
      if (item.kind === "heartbeat" && !(await this.#admit(user))) {
        throw new ConnectError("the caller's sessions were revoked: reconnect with a fresh token", Code.Unauthenticated);
      }
      yield create(WatchMySubscriptionResponseSchema, { kind: await watchItemKind(item, planAt, this.#entitlements.now()) });
    }
  }

  async listPlans() {
    return catalogAnswer(this.#entitlements.catalog, listPlansResponse);
  }
}
