import { randomBytes, randomUUID } from "node:crypto";
import type { CommonQueryMethods, DatabasePool } from "slonik";
import { recordAuditEvent } from "../db/audit-events.ts";
import { queriesOf } from "../db/call-transaction.ts";
import { listWebhookDeliveries, restartPendingRetries, retryFailedDeliveries, type DeliveryState, type WebhookDeliveryRecord } from "../db/webhook-deliveries.ts";
import {
  deleteWebhookEndpoint,
  findSigningTarget,
  findWebhookEndpoint,
  insertWebhookEndpoint,
  listWebhookEndpoints,
  rotateWebhookSecret,
  syncConfiguredEndpoints,
  updateWebhookEndpoint,
  type EndpointChanges,
  type WebhookEndpointRecord,
} from "../db/webhook-endpoints.ts";
import type { Clock } from "../domain/clock.ts";
import type { EntitlementEventType } from "../domain/entitlement-events.ts";
import { FailedPreconditionError, InvalidArgumentError, UnknownResourceError } from "../domain/errors.ts";
import { decodePageToken, pageOf } from "../domain/pagination.ts";
import { DEFAULT_SECRET_OVERLAP_SECONDS } from "../domain/validation.ts";
import type { WebhookDispatcher } from "./webhook-dispatcher.ts";

/** A new signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

/**
 * The endpoint with this id, to be changed through the API: not found, or refused when
 * WEBHOOK_URLS declares it (`instead` says what to do then).
 */
async function changeable(db: CommonQueryMethods, id: string, instead: string): Promise<WebhookEndpointRecord> {
  const endpoint = await findWebhookEndpoint(db, id);
  if (endpoint === null) throw new UnknownResourceError("webhook endpoint", id);
  if (endpoint.fromConfiguration) throw new FailedPreconditionError(`webhook endpoint ${id} is declared by WEBHOOK_URLS: ${instead}`);
  return endpoint;
}

/** The webhook endpoints admins keep (AdminService) and WEBHOOK_URLS declares. */
export class WebhookEndpoints {
  readonly #pool: DatabasePool;
  readonly #clock: Clock;
  /** This replica's dispatcher: woken when deliveries became due, and the sender of test messages. */
  readonly #dispatcher: Pick<WebhookDispatcher, "wake" | "post">;

  get #db(): CommonQueryMethods {
    return queriesOf(this.#pool);
  }

  constructor(pool: DatabasePool, clock: Clock, dispatcher: Pick<WebhookDispatcher, "wake" | "post">) {
    this.#pool = pool;
    this.#clock = clock;
    this.#dispatcher = dispatcher;
  }

  /** Adds an endpoint; its secret is answered here and never again. */
  async create(actor: string, url: string, eventTypes: readonly EntitlementEventType[]): Promise<{ endpoint: WebhookEndpointRecord; secret: string }> {
    const secret = newWebhookSecret();
    const at = this.#clock.now();
    const endpoint = await this.#db.transaction(async (tx) => {
      const made = await insertWebhookEndpoint(tx, { url, eventTypes, secret, at });
      await recordAuditEvent(tx, { actorId: actor, action: "webhook.create", targetUserId: "", reason: url, details: { endpoint_id: made.id, event_types: eventTypes.join(",") }, at });
      return made;
    });
    return { endpoint, secret };
  }

  async list(): Promise<readonly WebhookEndpointRecord[]> {
    return (await listWebhookEndpoints(this.#db)).map((endpoint) => this.#asOfNow(endpoint));
  }

  /** The endpoint as it stands now: a replaced secret whose overlap ended (not yet erased) signs no more. */
  #asOfNow(endpoint: WebhookEndpointRecord): WebhookEndpointRecord {
    const until = endpoint.previousSecretExpiresAt;
    return until !== null && until.getTime() <= this.#clock.now().getTime() ? { ...endpoint, previousSecretExpiresAt: null } : endpoint;
  }

  /** Removes an endpoint made through the API; null when there was none. */
  async delete(actor: string, id: string): Promise<WebhookEndpointRecord | null> {
    const at = this.#clock.now();
    return this.#db.transaction(async (tx) => {
      const endpoint = await findWebhookEndpoint(tx, id);
      if (endpoint === null) return null;
      if (endpoint.fromConfiguration) {
        throw new FailedPreconditionError(`webhook endpoint ${id} is declared by WEBHOOK_URLS: remove it there`);
      }
      await deleteWebhookEndpoint(tx, id);
      await recordAuditEvent(tx, { actorId: actor, action: "webhook.delete", targetUserId: "", reason: endpoint.url, details: { endpoint_id: id }, at });
      return this.#asOfNow(endpoint);
    });
  }

  /**
   * Changes an endpoint made through the API; its secret and deliveries stay. Resuming a paused
   * one starts its pending deliveries' retries over and sends them.
   */
  async update(actor: string, id: string, changes: EndpointChanges): Promise<WebhookEndpointRecord> {
    const at = this.#clock.now();
    const { before, after } = await this.#db.transaction(async (tx) => {
      const known = await changeable(tx, id, "change it there");
      const updated = await updateWebhookEndpoint(tx, id, changes, at);
      if (updated === null) throw new UnknownResourceError("webhook endpoint", id);
      if (known.pausedAt !== null && updated.pausedAt === null) await restartPendingRetries(tx, id);
      await recordAuditEvent(tx, {
        actorId: actor,
        action: "webhook.update",
        targetUserId: "",
        reason: updated.url,
        details: {
          endpoint_id: id,
          ...(changes.url === undefined ? {} : { url: changes.url }),
          ...(changes.eventTypes === undefined ? {} : { event_types: changes.eventTypes.join(",") }),
          ...(changes.paused === undefined ? {} : { paused: String(changes.paused) }),
        },
        at,
      });
      return { before: known, after: updated };
    });
    if (before.pausedAt !== null && after.pausedAt === null) this.#dispatcher.wake();
    return this.#asOfNow(after);
  }

  /**
   * POSTs a signed `webhook.test` message to the endpoint now, once, outside the feed: nothing
   * is recorded as a delivery and nothing is retried. Answers how it went.
   */
  async test(actor: string, id: string): Promise<{ messageId: string; status: number | null; error: string | null; delivered: boolean }> {
    const at = this.#clock.now();
    const target = await findSigningTarget(this.#db, id, at);
    if (target === null) throw new UnknownResourceError("webhook endpoint", id);
    const messageId = randomUUID();
    const body = JSON.stringify({ type: "webhook.test", timestamp: at.toISOString(), data: { endpointId: id, message: "a test of the endpoint: no entitlement changed" } });
    const { status, error } = await this.#dispatcher.post(target.url, target.secrets, messageId, body);
    const delivered = status !== null && status >= 200 && status < 300;
    await recordAuditEvent(this.#db, {
      actorId: actor,
      action: "webhook.test",
      targetUserId: "",
      reason: target.url,
      details: { endpoint_id: id, status: String(status ?? 0) },
      at,
    });
    return { messageId, status, error: delivered ? null : (error ?? `answered ${status}`), delivered };
  }

  /**
   * Gives an endpoint made through the API a new secret, answered here and never again; the one
   * it replaces still signs for `overlapMs` (none when 0), and an older one stops.
   */
  async rotateSecret(actor: string, id: string, overlapMs: number): Promise<{ endpoint: WebhookEndpointRecord; secret: string }> {
    const secret = newWebhookSecret();
    const at = this.#clock.now();
    const endpoint = await this.#db.transaction(async (tx) => {
      const known = await changeable(tx, id, "its secret is WEBHOOK_SECRET");
      const rotated = await rotateWebhookSecret(tx, { id, secret, previousUntil: new Date(at.getTime() + overlapMs), at });
      if (rotated === null) throw new UnknownResourceError("webhook endpoint", id);
      await recordAuditEvent(tx, {
        actorId: actor,
        action: "webhook.rotate_secret",
        targetUserId: "",
        reason: known.url,
        details: { endpoint_id: id, overlap_seconds: String(overlapMs / 1000) },
        at,
      });
      return rotated;
    });
    return { endpoint, secret };
  }

  /** Sends again what the endpoint was given up on since `since` (or all of it); how many. */
  async retryFailed(actor: string, id: string, since: Date | null): Promise<number> {
    const at = this.#clock.now();
    const retried = await this.#db.transaction(async (tx) => {
      const endpoint = await findWebhookEndpoint(tx, id);
      if (endpoint === null) throw new UnknownResourceError("webhook endpoint", id);
      const count = await retryFailedDeliveries(tx, id, since, at);
      await recordAuditEvent(tx, {
        actorId: actor,
        action: "webhook.retry_deliveries",
        targetUserId: "",
        reason: endpoint.url,
        details: { endpoint_id: id, retried: String(count), ...(since === null ? {} : { since: since.toISOString() }) },
        at,
      });
      return count;
    });
    if (retried > 0) this.#dispatcher.wake();
    return retried;
  }

  /** An endpoint's deliveries (in `state`, or all), newest first, a page at a time. */
  async deliveries(filter: {
    readonly endpointId: string;
    readonly state?: DeliveryState;
    readonly pageSize: number;
    readonly pageToken: string;
  }): Promise<{ deliveries: readonly WebhookDeliveryRecord[]; nextPageToken: string }> {
    if ((await findWebhookEndpoint(this.#db, filter.endpointId)) === null) throw new UnknownResourceError("webhook endpoint", filter.endpointId);
    // Unfiltered pages keep the tokens they had before `state` existed.
    const filters = filter.state === undefined ? [filter.endpointId] : [filter.endpointId, filter.state];
    const before = decodePageToken(filter.pageToken, filters);
    if (before !== undefined && !/^[0-9]+$/.test(before)) {
      throw new InvalidArgumentError([{ field: "page_token", description: "is not a token of this query" }]);
    }
    const rows = await listWebhookDeliveries(this.#db, {
      endpointId: filter.endpointId,
      state: filter.state,
      beforePosition: before === undefined ? undefined : BigInt(before),
      limit: filter.pageSize + 1,
    });
    const page = pageOf(rows, filter.pageSize, (delivery) => String(delivery.position), filters);
    return { deliveries: page.items, nextPageToken: page.nextPageToken };
  }

  /**
   * Makes the endpoints WEBHOOK_URLS declares exactly `urls`, signed with `secret`; a changed
   * secret leaves the old one signing for a day, as a rotation does.
   */
  configure(urls: readonly string[], secret: string): Promise<void> {
    const at = this.#clock.now();
    return syncConfiguredEndpoints(this.#pool, urls, secret, at, new Date(at.getTime() + DEFAULT_SECRET_OVERLAP_SECONDS * 1000));
  }
}
