import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { AccountStatus } from "../../gen/entitlements/v1/account_pb.js";
import type {
  AdminService,
  ApplyCatalogRequest,
  GetAccountRequest,
  ListPlanVersionsRequest,
  MigrateSubscribersRequest,
  ListAccountsRequest,
  ListAuditEventsRequest,
  ReactivateAccountRequest,
  ResetUsageRequest,
  RevokeSessionsRequest,
  SuspendAccountRequest,
} from "../../gen/entitlements/v1/admin_service_pb.js";
import type { Administration } from "../app/administration.ts";
import type { CatalogAdministration } from "../app/catalog-administration.ts";
import type { WebhookEndpoints } from "../app/webhook-endpoints.ts";
import { WebhookMethods } from "./webhook-methods.ts";
import { InvalidArgumentError } from "../domain/errors.ts";
import { catalogChangeMessage, catalogMessage, catalogOfMessage, planVersionMessage } from "./catalog-messages.ts";
import { callerOf } from "../auth/gates.ts";
import { auditReason } from "../domain/accounts.ts";
import { pageSize } from "../domain/pagination.ts";
import * as validate from "../domain/validation.ts";
import type { Entitlements } from "../app/entitlements.ts";
import { grantMessage, overrideMessage } from "./terms-messages.ts";
import { accountMessage, currentPlanMessages, quotaStatusMessage, subscriptionMessage } from "./messages.ts";

const STATUS_FILTERS = {
  [AccountStatus.UNSPECIFIED]: undefined,
  [AccountStatus.ACTIVE]: "active",
  [AccountStatus.SUSPENDED]: "suspended",
} as const;

/** entitlements.v1.AdminService: superadmins only (checked by its request gate). */
export class AdminServiceImpl extends WebhookMethods implements ServiceImpl<typeof AdminService> {
  readonly #administration: Administration;
  readonly #entitlements: Entitlements;

  readonly #catalogs: CatalogAdministration;

  constructor(administration: Administration, entitlements: Entitlements, catalogs: CatalogAdministration, webhooks: WebhookEndpoints) {
    super(webhooks);
    this.#administration = administration;
    this.#entitlements = entitlements;
    this.#catalogs = catalogs;
  }

  async getCatalog() {
    return { catalog: catalogMessage(await this.#catalogs.view()) };
  }

  async applyCatalog(request: ApplyCatalogRequest, context: HandlerContext) {
    if (request.catalog === undefined) throw new InvalidArgumentError([{ field: "catalog", description: "is required" }]);
    const changes = await this.#catalogs.apply(callerOf(context), catalogOfMessage(request.catalog), request.dryRun);
    return { changes: changes.map(catalogChangeMessage) };
  }

  async listPlanVersions(request: ListPlanVersionsRequest) {
    const versions = await this.#catalogs.versions(validate.catalogName(request.planCode, "plan_code"));
    return { versions: versions.map(planVersionMessage) };
  }

  async migrateSubscribers(request: MigrateSubscribersRequest, context: HandlerContext) {
    const planCode = validate.catalogName(request.planCode, "plan_code");
    if (request.fromVersion < 0) throw new InvalidArgumentError([{ field: "from_version", description: "must be 0 (every older version) or a version" }]);
    const fromVersion = request.fromVersion === 0 ? undefined : request.fromVersion;
    return { migrated: BigInt(await this.#catalogs.migrateSubscribers(callerOf(context), planCode, fromVersion, request.dryRun)) };
  }

  async listAccounts(request: ListAccountsRequest) {
    const page = await this.#administration.listAccounts({
      query: validate.searchPrefix(request.query),
      planCode: request.planCode === "" ? undefined : validate.catalogName(request.planCode, "plan_code"),
      status: STATUS_FILTERS[request.status],
      pageSize: pageSize(request.pageSize),
      pageToken: request.pageToken,
    });
    return { accounts: page.accounts.map(accountMessage), nextPageToken: page.nextPageToken };
  }

  async getAccount(request: GetAccountRequest) {
    const details = await this.#administration.accountDetails(validate.userId(request.userId));
    const now = this.#entitlements.now();
    return {
      ...currentPlanMessages(details, now),
      account: accountMessage(details.account),
      history: details.history.map((subscription) => subscriptionMessage(subscription, now)),
      usage: details.usage.map(quotaStatusMessage),
      overrides: details.overrides.map((override) => overrideMessage(override)),
      grants: details.grants.map((grant) => grantMessage(grant)),
    };
  }

  async suspendAccount(request: SuspendAccountRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    const reason = auditReason(request.reason);
    return { account: accountMessage(await this.#administration.suspend(callerOf(context), userId, reason)) };
  }

  async reactivateAccount(request: ReactivateAccountRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    return { account: accountMessage(await this.#administration.reactivate(callerOf(context), userId)) };
  }

  async resetUsage(request: ResetUsageRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    const metric = request.metric === "" ? undefined : this.#entitlements.metric(validate.catalogName(request.metric, "metric"));
    const reason = request.reason === "" ? "" : validate.freeText(request.reason, "reason", 1000);
    const quotas = await this.#administration.resetUsage(callerOf(context), userId, metric, reason);
    return { quotas: quotas.map(quotaStatusMessage) };
  }

  async revokeSessions(request: RevokeSessionsRequest, context: HandlerContext) {
    const userId = validate.userId(request.userId);
    const validAfter = await this.#administration.revokeSessions(callerOf(context), userId);
    return { tokensValidAfter: timestampFromDate(validAfter) };
  }

  async getPlatformStats() {
    const stats = await this.#administration.stats();
    return { ...stats, accountsByPlan: [...stats.accountsByPlan], usageThisPeriod: [...stats.usageThisPeriod] };
  }

  async listAuditEvents(request: ListAuditEventsRequest) {
    const page = await this.#administration.auditEvents({
      userId: request.userId === "" ? undefined : validate.userId(request.userId),
      pageSize: pageSize(request.pageSize),
      pageToken: request.pageToken,
    });
    return {
      events: page.events.map((event) => ({
        actorId: event.actorId,
        action: event.action,
        targetUserId: event.targetUserId,
        reason: event.reason,
        at: timestampFromDate(event.at),
        details: event.details,
      })),
      nextPageToken: page.nextPageToken,
    };
  }
}
