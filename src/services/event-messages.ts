import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AccountStatus } from "../../gen/entitlements/v1/account_pb.js";
import { EntitlementEventSchema, UserEntitlementsSchema, type EntitlementEvent, type UserEntitlements } from "../../gen/entitlements/v1/events_pb.js";
import { HeartbeatSchema, SnapshotSchema, type WatchEntitlementsResponse } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { PlanSchema } from "../../gen/entitlements/v1/plan_pb.js";
import type { WatchItem } from "../app/entitlement-watches.ts";
import type { EntitlementEventRecord } from "../db/entitlement-events.ts";
import type { Plan } from "../domain/catalog.ts";
import type { EntitlementView } from "../domain/entitlement-view.ts";
import { planMessage, scheduledChangeMessage, subscriptionMessage } from "./messages.ts";
import { ENTITLEMENT_SOURCES } from "./terms-messages.ts";

/** A plan at one of its versions, as the catalog (read again if need be) has it. */
export type PlanLookup = (code: string, version: number) => Promise<Plan | undefined>;

/** The view as the contract's UserEntitlements, its subscription as of `at`. */
export async function userEntitlementsMessage(view: EntitlementView, planAt: PlanLookup, at: Date): Promise<UserEntitlements> {
  const plan = await planAt(view.planCode, view.planVersion);
  return create(UserEntitlementsSchema, {
    // A version the catalog does not hold (never the case but for a database edited by hand) is named only.
    plan: plan === undefined ? create(PlanSchema, { code: view.planCode, version: view.planVersion }) : planMessage(plan),
    subscription: view.subscription === null ? undefined : subscriptionMessage(view.subscription, at, plan?.interval),
    accountStatus: view.suspended ? AccountStatus.SUSPENDED : AccountStatus.ACTIVE,
    scheduledChange: view.scheduledChange === null ? undefined : scheduledChangeMessage(view.scheduledChange),
    features: view.features.map((feature) => ({ feature: feature.feature, enabled: feature.enabled, source: ENTITLEMENT_SOURCES[feature.source] })),
    limits: view.limits.map((limit) => ({ metric: limit.metric, limit: limit.limit ?? undefined, source: ENTITLEMENT_SOURCES[limit.source] })),
    validUntil: view.validUntil === null ? undefined : timestampFromDate(view.validUntil),
  });
}

/** Each event is converted once, however many watches and webhooks send it. */
const eventMessages = new WeakMap<EntitlementEventRecord, Promise<EntitlementEvent>>();

export function entitlementEventMessage(event: EntitlementEventRecord, planAt: PlanLookup): Promise<EntitlementEvent> {
  let message = eventMessages.get(event);
  if (message === undefined) {
    message = (async () =>
      create(EntitlementEventSchema, {
        id: event.id,
        position: event.position,
        type: event.type,
        userId: event.userId,
        revision: event.revision,
        occurredAt: timestampFromDate(event.occurredAt),
        entitlements: event.entitlements === null ? undefined : await userEntitlementsMessage(event.entitlements, planAt, event.occurredAt),
        details: { ...event.details },
      }))();
    eventMessages.set(event, message);
  }
  return message;
}

/** One item of a watch as what a stream's message carries (WatchEntitlements' and WatchMySubscription's `kind`). */
export async function watchItemKind(item: WatchItem, planAt: PlanLookup, at: Date): Promise<WatchEntitlementsResponse["kind"]> {
  switch (item.kind) {
    case "snapshot":
      return {
        case: "snapshot",
        value: create(SnapshotSchema, {
          userId: item.userId,
          entitlements: await userEntitlementsMessage(item.view, planAt, at),
          revision: item.revision,
          position: item.position,
        }),
      };
    case "event":
      return { case: "event", value: await entitlementEventMessage(item.event, planAt) };
    case "heartbeat":
      return { case: "heartbeat", value: create(HeartbeatSchema, { position: item.position }) };
  }
}

/**
 * A webhook's body for the event: the Standard Webhooks envelope (`type`, `timestamp`), its
 * `data` the event as the contract's JSON.
 */
export async function webhookPayload(event: EntitlementEventRecord, planAt: PlanLookup): Promise<string> {
  const data = toJson(EntitlementEventSchema, await entitlementEventMessage(event, planAt));
  return JSON.stringify({ type: event.type, timestamp: event.occurredAt.toISOString(), data });
}
