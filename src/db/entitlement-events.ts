import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
import type { EntitlementView } from "../domain/entitlement-view.ts";
import type { EntitlementEventType } from "../domain/entitlement-events.ts";

/** An event of the change feed as stored (docs/events.md). */
export type EntitlementEventRecord = {
  readonly id: string;
  readonly position: bigint;
  readonly type: EntitlementEventType;
  readonly userId: string;
  readonly revision: bigint;
  readonly occurredAt: Date;
  /** What the user is entitled to after the change; null for usage events. */
  readonly entitlements: EntitlementView | null;
  readonly details: Readonly<Record<string, string>>;
};

const isoDate = z.string().transform((text) => new Date(text));
const subscriptionJson = z.object({
  userId: z.string(),
  planCode: z.string(),
  planVersion: z.number(),
  startedAt: isoDate,
  expiresAt: isoDate.nullable(),
  endedAt: isoDate.nullable(),
  trialEndsAt: isoDate.nullable().optional(),
});
const sourceJson = z.enum(["plan", "override"]);
const viewJson = z.object({
  planCode: z.string(),
  planVersion: z.number(),
  subscription: subscriptionJson.nullable(),
  suspended: z.boolean(),
  scheduledChange: z.object({ planCode: z.string(), effectiveAt: isoDate }).nullable(),
  features: z.array(z.object({ feature: z.string(), enabled: z.boolean(), source: sourceJson })),
  limits: z.array(z.object({ metric: z.string(), limit: z.string().nullable().transform((limit) => (limit === null ? null : BigInt(limit))), source: sourceJson })),
  validUntil: isoDate.nullable(),
});

const eventRow = z
  .object({
    id: z.string(),
    position: z.bigint(),
    type: z.string(),
    user_id: z.string(),
    revision: z.bigint(),
    occurred_at: timestampColumn,
    entitlements: viewJson.nullable(),
    details: z.record(z.string(), z.string()),
  })
  .transform(
    (row): EntitlementEventRecord => ({
      id: row.id,
      position: row.position,
      type: row.type as EntitlementEventType,
      userId: row.user_id,
      revision: row.revision,
      occurredAt: row.occurred_at,
      entitlements: row.entitlements,
      details: row.details,
    }),
  );

/** The view as JSON: dates as ISO text, limits (64-bit) as decimal text. */
function viewToJson(view: EntitlementView) {
  return JSON.parse(JSON.stringify(view, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value))) as Record<string, unknown>;
}

export type NewEntitlementEvent = {
  readonly userId: string;
  readonly type: EntitlementEventType;
  readonly at: Date;
  readonly entitlements: EntitlementView | null;
  readonly details?: Readonly<Record<string, string>>;
};

/**
 * Writes the event and raises the account's revision, in the transaction of the change (the
 * account row must exist); the feed hears of it once that commits. Returns the new revision.
 */
export async function recordEntitlementEvent(db: CommonQueryMethods, event: NewEntitlementEvent): Promise<bigint> {
  const entitlements = event.entitlements === null ? null : sql.jsonb(viewToJson(event.entitlements));
  return db.oneFirst(sql.type(z.object({ event_revision: z.bigint() }))`
    select event_revision from record_entitlement_event(
      ${event.userId}, ${event.type}, ${sql.timestamp(event.at)}, ${entitlements}, ${sql.jsonb(event.details ?? {})}
    )
  `);
}

/** Gives up to `limit` committed events their feed positions; returns how many it gave. */
export async function sequenceEntitlementEvents(db: CommonQueryMethods, limit: number): Promise<number> {
  return db.oneFirst(sql.type(z.object({ given: z.number() }))`select sequence_entitlement_events(${limit}) as given`);
}

/** The feed's last position, and the last one the retention sweep deleted. */
export async function feedBounds(db: CommonQueryMethods): Promise<{ readonly head: bigint; readonly prunedThrough: bigint }> {
  const row = await db.one(sql.type(z.object({ head: z.bigint(), pruned_through: z.bigint() }))`
    select head, pruned_through from entitlement_feed
  `);
  return { head: row.head, prunedThrough: row.pruned_through };
}

/**
 * Events after position `after` up to `through`, in feed order, at most `limit`; only those of
 * `userIds` when given.
 */
export async function entitlementEventsAfter(
  db: CommonQueryMethods,
  range: { readonly after: bigint; readonly through: bigint; readonly userIds?: readonly string[]; readonly limit: number },
): Promise<readonly EntitlementEventRecord[]> {
  const users = range.userIds === undefined ? sql.fragment`true` : sql.fragment`user_id = any(${sql.array(range.userIds, "text")})`;
  return db.any(sql.type(eventRow)`
    select id, position, type, user_id, revision, occurred_at, entitlements, details from entitlement_events
    where position > ${range.after} and position <= ${range.through} and ${users}
    order by position
    limit ${range.limit}
  `);
}

/** Deletes up to `limit` of the oldest sequenced events that occurred before `before`; returns how many. */
export async function deleteEntitlementEventsBefore(db: CommonQueryMethods, before: Date, limit: number): Promise<number> {
  const deleted = await db.oneFirst(sql.type(z.object({ deleted: z.number() }))`
    with doomed as (
      select position from entitlement_events
      where position is not null and occurred_at < ${sql.timestamp(before)}
      order by position limit ${limit}
    ), gone as (
      delete from entitlement_events e using doomed where e.position = doomed.position returning e.position
    ), marked as (
      update entitlement_feed set pruned_through = greatest(pruned_through, (select max(position) from gone))
      where exists (select 1 from gone)
    )
    select count(*)::integer as deleted from gone
  `);
  return deleted;
}

/** Events deleted per statement, so the retention sweep never holds many locks at once. */
const EVENT_DELETE_BATCH = 5000;

/** Deletes every sequenced event that occurred before `before`, a batch at a time; returns how many. */
export async function deleteOldEvents(db: CommonQueryMethods, before: Date): Promise<number> {
  let total = 0;
  for (;;) {
    const deleted = await deleteEntitlementEventsBefore(db, before, EVENT_DELETE_BATCH);
    total += deleted;
    if (deleted < EVENT_DELETE_BATCH) return total;
  }
}

/** The events at these positions (those still kept), by position. */
export async function entitlementEventsAt(db: CommonQueryMethods, positions: readonly bigint[]): Promise<Map<bigint, EntitlementEventRecord>> {
  const rows = await db.any(sql.type(eventRow)`
    select id, position, type, user_id, revision, occurred_at, entitlements, details from entitlement_events
    where position = any(${sql.array(positions.map(String), "int8")})
  `);
  return new Map(rows.map((row) => [row.position, row]));
}
