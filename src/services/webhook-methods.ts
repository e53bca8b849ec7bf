import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type {
  AdminService,
  CreateWebhookEndpointRequest,
  DeleteWebhookEndpointRequest,
  ListWebhookDeliveriesRequest,
  RetryWebhookDeliveriesRequest,
  RotateWebhookSecretRequest,
  TestWebhookEndpointRequest,
  UpdateWebhookEndpointRequest,
} from "../../gen/entitlements/v1/admin_service_pb.js";
import { WebhookDeliverySchema, WebhookDeliveryState, WebhookEndpointSchema, type WebhookDelivery, type WebhookEndpoint } from "../../gen/entitlements/v1/webhooks_pb.js";
import type { WebhookEndpoints } from "../app/webhook-endpoints.ts";
import { callerOf } from "../auth/gates.ts";
import type { DeliveryState, WebhookDeliveryRecord } from "../db/webhook-deliveries.ts";
import { InvalidArgumentError } from "../domain/errors.ts";
import type { EndpointChanges, WebhookEndpointRecord } from "../db/webhook-endpoints.ts";
import { pageSize } from "../domain/pagination.ts";
import * as validate from "../domain/validation.ts";

export function webhookEndpointMessage(endpoint: WebhookEndpointRecord): WebhookEndpoint {
  return create(WebhookEndpointSchema, {
    id: endpoint.id,
    url: endpoint.url,
    eventTypes: [...endpoint.eventTypes],
    createdAt: timestampFromDate(endpoint.createdAt),
    fromConfiguration: endpoint.fromConfiguration,
    previousSecretExpiresAt: endpoint.previousSecretExpiresAt === null ? undefined : timestampFromDate(endpoint.previousSecretExpiresAt),
    pausedAt: endpoint.pausedAt === null ? undefined : timestampFromDate(endpoint.pausedAt),
  });
}

export function webhookDeliveryMessage(delivery: WebhookDeliveryRecord): WebhookDelivery {
  const state =
    delivery.deliveredAt !== null ? WebhookDeliveryState.DELIVERED : delivery.abandonedAt !== null ? WebhookDeliveryState.FAILED : WebhookDeliveryState.PENDING;
  return create(WebhookDeliverySchema, {
    endpointId: delivery.endpointId,
    eventId: delivery.eventId,
    position: delivery.position,
    eventType: delivery.eventType,
    userId: delivery.userId,
    state,
    attempts: delivery.attempts,
    lastAttemptAt: delivery.lastAttemptAt === null ? undefined : timestampFromDate(delivery.lastAttemptAt),
    lastStatus: delivery.lastStatus ?? 0,
    lastError: delivery.lastError ?? "",
    nextAttemptAt: state === WebhookDeliveryState.PENDING ? timestampFromDate(delivery.nextAttemptAt) : undefined,
    deliveredAt: delivery.deliveredAt === null ? undefined : timestampFromDate(delivery.deliveredAt),
  });
}

const DELIVERY_STATES = new Map<WebhookDeliveryState, DeliveryState>([
  [WebhookDeliveryState.PENDING, "pending"],
  [WebhookDeliveryState.DELIVERED, "delivered"],
  [WebhookDeliveryState.FAILED, "failed"],
]);

/** ListWebhookDeliveries' `state`: undefined when unspecified. */
function deliveryState(state: WebhookDeliveryState): DeliveryState | undefined {
  if (state === WebhookDeliveryState.UNSPECIFIED) return undefined;
  const known = DELIVERY_STATES.get(state);
  if (known === undefined) throw new InvalidArgumentError([{ field: "state", description: `is not a delivery state: ${state}` }]);
  return known;
}

/** What UpdateWebhookEndpoint's `update_mask` names, validated. */
function endpointChanges(request: UpdateWebhookEndpointRequest): EndpointChanges {
  const paths = request.updateMask?.paths ?? [];
  if (paths.length === 0) throw new InvalidArgumentError([{ field: "update_mask", description: "must name what to change: url, event_types or paused" }]);
  let changes: EndpointChanges = {};
  paths.forEach((path, index) => {
    if (path === "url") changes = { ...changes, url: validate.webhookUrl(request.url) };
    else if (path === "event_types") changes = { ...changes, eventTypes: validate.eventTypes(request.eventTypes) };
    else if (path === "paused") changes = { ...changes, paused: request.paused };
    else throw new InvalidArgumentError([{ field: `update_mask.paths[${index}]`, description: `is not url, event_types or paused: "${path.slice(0, 64)}"` }]);
  });
  return changes;
}

/** The AdminService RPCs of webhook endpoints. */
export type WebhookRpcs = Pick<
  ServiceImpl<typeof AdminService>,
  | "createWebhookEndpoint"
  | "listWebhookEndpoints"
  | "updateWebhookEndpoint"
  | "deleteWebhookEndpoint"
  | "rotateWebhookSecret"
  | "testWebhookEndpoint"
  | "retryWebhookDeliveries"
  | "listWebhookDeliveries"
>;

/** Validates, delegates to WebhookEndpoints with the caller as actor, converts. */
export class WebhookMethods implements WebhookRpcs {
  readonly #webhooks: WebhookEndpoints;

  constructor(webhooks: WebhookEndpoints) {
    this.#webhooks = webhooks;
  }

  async createWebhookEndpoint(request: CreateWebhookEndpointRequest, context: HandlerContext) {
    const url = validate.webhookUrl(request.url);
    const { endpoint, secret } = await this.#webhooks.create(callerOf(context), url, validate.eventTypes(request.eventTypes));
    return { endpoint: webhookEndpointMessage(endpoint), secret };
  }

  async listWebhookEndpoints() {
    return { endpoints: (await this.#webhooks.list()).map(webhookEndpointMessage) };
  }

  async updateWebhookEndpoint(request: UpdateWebhookEndpointRequest, context: HandlerContext) {
    const endpointId = validate.uuid(request.endpointId, "endpoint_id");
    return { endpoint: webhookEndpointMessage(await this.#webhooks.update(callerOf(context), endpointId, endpointChanges(request))) };
  }

  async deleteWebhookEndpoint(request: DeleteWebhookEndpointRequest, context: HandlerContext) {
    const deleted = await this.#webhooks.delete(callerOf(context), validate.uuid(request.endpointId, "endpoint_id"));
    return { endpoint: deleted === null ? undefined : webhookEndpointMessage(deleted) };
  }

  async testWebhookEndpoint(request: TestWebhookEndpointRequest, context: HandlerContext) {
    const { messageId, status, error, delivered } = await this.#webhooks.test(callerOf(context), validate.uuid(request.endpointId, "endpoint_id"));
    return { delivered, status: status ?? 0, error: error ?? "", messageId };
  }

  async rotateWebhookSecret(request: RotateWebhookSecretRequest, context: HandlerContext) {
    const endpointId = validate.uuid(request.endpointId, "endpoint_id");
    const { endpoint, secret } = await this.#webhooks.rotateSecret(callerOf(context), endpointId, validate.secretOverlapMs(request.overlapSeconds));
    return { endpoint: webhookEndpointMessage(endpoint), secret };
  }

  async retryWebhookDeliveries(request: RetryWebhookDeliveriesRequest, context: HandlerContext) {
    const endpointId = validate.uuid(request.endpointId, "endpoint_id");
    const since = request.since === undefined ? null : validate.instant(timestampDate(request.since), "since");
    return { retried: await this.#webhooks.retryFailed(callerOf(context), endpointId, since) };
  }

  async listWebhookDeliveries(request: ListWebhookDeliveriesRequest) {
    const endpointId = validate.uuid(request.endpointId, "endpoint_id");
    const { deliveries, nextPageToken } = await this.#webhooks.deliveries({
      endpointId,
      state: deliveryState(request.state),
      pageSize: Math.min(pageSize(request.pageSize), 100),
      pageToken: request.pageToken,
    });
    return { deliveries: deliveries.map(webhookDeliveryMessage), nextPageToken };
  }
}
