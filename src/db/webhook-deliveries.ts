import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";

/** An event's delivery to one endpoint, as it stands. */
export type WebhookDeliveryRecord = {
  readonly endpointId: string;
  readonly position: bigint;
  readonly eventId: string;
  readonly eventType: string;
  readonly userId: string;
  readonly attempts: number;
  readonly nextAttemptAt: Date;
  readonly lastAttemptAt: Date | null;
  /** The HTTP status of the last attempt; null when it got none (refused, timed out). */
  readonly lastStatus: number | null;
  readonly lastError: string | null;
  readonly deliveredAt: Date | null;
  /** Set when retries ran out. */
  readonly abandonedAt: Date | null;
};

const DELIVERY_COLUMNS = sql.fragment`
  d.endpoint_id, d.position, d.event_id, d.event_type, d.user_id, d.attempts, d.next_attempt_at, d.last_attempt_at,
  d.last_status, d.last_error, d.delivered_at, d.abandoned_at
`;

const deliveryFields = {
  endpoint_id: z.string(),
  position: z.bigint(),
  event_id: z.string(),
  event_type: z.string(),
  user_id: z.string(),
  attempts: z.number(),
  next_attempt_at: timestampColumn,
  last_attempt_at: timestampColumn.nullable(),
  last_status: z.number().nullable(),
  last_error: z.string().nullable(),
  delivered_at: timestampColumn.nullable(),
  abandoned_at: timestampColumn.nullable(),
};

function deliveryOf(row: z.infer<z.ZodObject<typeof deliveryFields>>): WebhookDeliveryRecord {
  return {
    endpointId: row.endpoint_id,
    position: row.position,
    eventId: row.event_id,
    eventType: row.event_type,
    userId: row.user_id,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastAttemptAt: row.last_attempt_at,
    lastStatus: row.last_status,
    lastError: row.last_error,
    deliveredAt: row.delivered_at,
    abandonedAt: row.abandoned_at,
  };
}

const deliveryRow = z.object(deliveryFields).transform(deliveryOf);

/** Where a delivery stands: not yet delivered, delivered, or given up on. */
export type DeliveryState = "pending" | "delivered" | "failed";

const STATE_CONDITIONS = {
  pending: sql.fragment`d.delivered_at is null and d.abandoned_at is null`,
  delivered: sql.fragment`d.delivered_at is not null`,
  failed: sql.fragment`d.abandoned_at is not null and d.delivered_at is null`,
};

/** An endpoint's deliveries (in `state`, or all), newest event first, before a keyset position. */
export async function listWebhookDeliveries(
  db: CommonQueryMethods,
  filter: { readonly endpointId: string; readonly state: DeliveryState | undefined; readonly beforePosition: bigint | undefined; readonly limit: number },
): Promise<readonly WebhookDeliveryRecord[]> {
  const before = filter.beforePosition === undefined ? sql.fragment`true` : sql.fragment`d.position < ${filter.beforePosition}`;
  const inState = filter.state === undefined ? sql.fragment`true` : STATE_CONDITIONS[filter.state];
  return db.any(sql.type(deliveryRow)`
    select ${DELIVERY_COLUMNS} from webhook_deliveries d
    where d.endpoint_id = ${filter.endpointId} and ${before} and ${inState}
    order by d.position desc limit ${filter.limit}
  `);
}

/**
 * A delivery to attempt now: where to, signed with which secrets (the endpoint's, then the one it
 * replaced while that still signs), and the event (absent once deleted).
 */
export type ClaimedDelivery = WebhookDeliveryRecord & { readonly url: string; readonly secrets: readonly string[]; readonly firstAttemptAt: Date };

const claimedRow = z
  .object({ ...deliveryFields, url: z.string(), secret: z.string(), previous_secret: z.string().nullable(), first_attempt_at: timestampColumn })
  .transform(
    (row): ClaimedDelivery => ({
      ...deliveryOf(row),
      url: row.url,
      secrets: row.previous_secret === null ? [row.secret] : [row.secret, row.previous_secret],
      firstAttemptAt: row.first_attempt_at,
    }),
  );

/**
 * Leases up to `limit` due deliveries until `leaseUntil`, counting an attempt on each: only the
 * earliest pending one of each account and endpoint (events of an account go out in order), none
 * another replica holds, none of a paused endpoint, and no more than make `perEndpoint` leased at
 * once for one endpoint across replicas (a slow endpoint cannot take every attempt).
 */
export async function claimDueDeliveries(
  db: CommonQueryMethods,
  at: Date,
  leaseUntil: Date,
  limit: number,
  perEndpoint: number,
): Promise<readonly ClaimedDelivery[]> {
  const now = sql.timestamp(at);
  return db.any(sql.type(claimedRow)`
    with due as (
      select d.endpoint_id, d.position, d.next_attempt_at from webhook_endpoints w
      cross join lateral (
        select d.endpoint_id, d.position, d.next_attempt_at from webhook_deliveries d
        where d.endpoint_id = w.id and ${STATE_CONDITIONS.pending} and d.next_attempt_at <= ${now}
          and (d.leased_until is null or d.leased_until <= ${now})
          and not exists (
            select 1 from webhook_deliveries e
            where e.endpoint_id = d.endpoint_id and e.user_id = d.user_id and e.position < d.position
              and e.delivered_at is null and e.abandoned_at is null
          )
        order by d.next_attempt_at, d.position
        limit greatest(0, ${perEndpoint} - (
          select count(*) from webhook_deliveries l
          where l.endpoint_id = w.id and l.leased_until > ${now} and l.delivered_at is null and l.abandoned_at is null
        ))
        for update of d skip locked
      ) d
      where w.paused_at is null
      order by d.next_attempt_at, d.position
      limit ${limit}
    )
    update webhook_deliveries d
    set leased_until = ${sql.timestamp(leaseUntil)}, attempts = d.attempts + 1,
        first_attempt_at = coalesce(d.first_attempt_at, ${now}), last_attempt_at = ${now}
    from due, webhook_endpoints w
    where d.endpoint_id = due.endpoint_id and d.position = due.position and w.id = d.endpoint_id
    returning ${DELIVERY_COLUMNS}, w.url, w.secret,
      case when w.previous_secret_expires_at > ${now} then w.previous_secret end as previous_secret, d.first_attempt_at
  `);
}

/** What an attempt came to: delivered, to be tried again at `retryAt`, or given up (`retryAt` null). */
export type AttemptOutcome = {
  readonly status: number | null;
  readonly error: string | null;
  readonly delivered: boolean;
  readonly retryAt: Date | null;
};

export async function recordAttempt(db: CommonQueryMethods, delivery: { readonly endpointId: string; readonly position: bigint }, outcome: AttemptOutcome, at: Date): Promise<void> {
  const retryAt = outcome.retryAt === null ? null : sql.timestamp(outcome.retryAt);
  await db.query(sql.unsafe`
    update webhook_deliveries
    set leased_until = null, last_status = ${outcome.status}, last_error = ${outcome.error},
        delivered_at = case when ${outcome.delivered} then ${sql.timestamp(at)}::timestamptz end,
        abandoned_at = case when not ${outcome.delivered} and ${retryAt}::timestamptz is null then ${sql.timestamp(at)}::timestamptz end,
        next_attempt_at = coalesce(${retryAt}::timestamptz, next_attempt_at)
    where endpoint_id = ${delivery.endpointId} and position = ${delivery.position}
  `);
}

/**
 * Makes an endpoint's given-up deliveries (since `since`, or all) whose events are still kept
 * pending again at `at`, their retries started over; returns how many.
 */
export async function retryFailedDeliveries(db: CommonQueryMethods, endpointId: string, since: Date | null, at: Date): Promise<number> {
  const given = since === null ? sql.fragment`true` : sql.fragment`d.abandoned_at >= ${sql.timestamp(since)}`;
  const { rowCount } = await db.query(sql.unsafe`
    update webhook_deliveries d
    set abandoned_at = null, first_attempt_at = null, next_attempt_at = ${sql.timestamp(at)}, leased_until = null
    where d.endpoint_id = ${endpointId} and ${STATE_CONDITIONS.failed} and ${given}
      and exists (select 1 from entitlement_events e where e.position = d.position)
  `);
  return rowCount;
}

/** Starts the retries of an endpoint's pending deliveries over (it was paused: the wait used none of them). */
export async function restartPendingRetries(db: CommonQueryMethods, endpointId: string): Promise<void> {
  await db.query(sql.unsafe`
    update webhook_deliveries d set first_attempt_at = null
    where d.endpoint_id = ${endpointId} and ${STATE_CONDITIONS.pending}
  `);
}

/** Deletes settled deliveries of events older than `before` (the events themselves are gone). */
export async function deleteSettledDeliveries(db: CommonQueryMethods, before: Date): Promise<void> {
  await db.query(sql.unsafe`
    delete from webhook_deliveries
    where (delivered_at is not null or abandoned_at is not null) and coalesce(delivered_at, abandoned_at) < ${sql.timestamp(before)}
  `);
}
