import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";

/** What a reservation is, as of a moment: held until `expiresAt`, then expired unless settled. */
export type ReservationState = "held" | "committed" | "released" | "expired";

/** One metric a reservation holds: on the row of `periodStart`, `amount` units; `actual` once committed. */
export type ReservedItem = {
  readonly metric: string;
  readonly amount: bigint;
  readonly periodStart: Date;
  readonly actual: bigint | null;
};

export type ReservationRecord = {
  readonly id: string;
  readonly userId: string;
  readonly items: readonly ReservedItem[];
  readonly state: ReservationState;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly settledAt: Date | null;
};

/** A reserved row after a settlement: its count, what other reservations hold, and what grants hold when a commit weighed them. */
export type SettledRow = { readonly used: bigint; readonly reserved: bigint; readonly grantRemaining: bigint | null };

export type Settlement =
  | { readonly kind: "not_found" }
  /** An item of the commit that was not reserved, or more than was. */
  | { readonly kind: "not_reserved" | "too_much"; readonly metric: string; readonly reserved: bigint | null }
  /** Settled now; rows in the order of the reservation's items. */
  | { readonly kind: "settled"; readonly reservation: ReservationRecord; readonly rows: readonly SettledRow[] }
  /** Settled before (or expired): as it stands, with the counts a commit left (`usedAfter`). */
  | { readonly kind: "unchanged"; readonly reservation: ReservationRecord; readonly usedAfter: readonly (bigint | null)[] };

const settleRow = z.object({
  outcome: z.string(),
  state: z.string().nullable(),
  metric: z.string().nullable(),
  period_start: timestampColumn.nullable(),
  amount: z.bigint().nullable(),
  actual: z.bigint().nullable(),
  used: z.bigint().nullable(),
  reserved: z.bigint().nullable(),
  grant_remaining: z.bigint().nullable(),
  created_at: timestampColumn.nullable(),
  expires_at: timestampColumn.nullable(),
  settled_at: timestampColumn.nullable(),
});

/** A commit (the `actual` amounts, by metric, with the ceilings they draw grants under) or, with `commit` null, a release. */
export type SettlementRequest = {
  readonly userId: string;
  readonly reservationId: string;
  readonly commit: readonly { readonly metric: string; readonly amount: bigint; readonly ceiling: bigint }[] | null;
  readonly now: Date;
};

/**
 * Commits and releases that arrived together, in one statement (the settle_reservations_batch
 * function), which locks the rows the reservations hold on and decides everything under those
 * locks. Settlements in the order given.
 */
export async function settleReservations(db: CommonQueryMethods, requests: readonly SettlementRequest[]): Promise<Settlement[]> {
  const items = requests.flatMap((request) => request.commit ?? []);
  // Each call's items are items[first..last] (1-based; last = first - 1 when it has none).
  let end = 0;
  const ranges = requests.map((request) => {
    const first = end + 1;
    end += request.commit?.length ?? 0;
    return { first, last: end };
  });
  const found = await db.any(sql.prepared("reservation_settle_batch", settleRow.extend({ call: z.number() }))`
    select call, outcome, state, metric, period_start, amount, actual, used, reserved, grant_remaining, created_at, expires_at, settled_at
    from settle_reservations_batch(
      ${sql.array(requests.map((request) => request.userId), "text")}::text[],
      ${sql.array(requests.map((request) => request.reservationId), "uuid")}::uuid[],
      ${sql.array(requests.map((request) => request.commit !== null), "bool")}::boolean[],
      ${sql.array(ranges.map((range) => range.first), "int4")}::integer[],
      ${sql.array(ranges.map((range) => range.last), "int4")}::integer[],
      ${sql.array(items.map((item) => item.metric), "text")}::text[],
      ${sql.array(items.map((item) => item.amount), "int8")}::bigint[],
      ${sql.array(items.map((item) => item.ceiling), "int8")}::bigint[],
      ${sql.timestamp(requests[0]!.now)}
    )
  `);
  const byCall = Map.groupBy(found, (row) => row.call);
  return requests.map((request, index) => settlementOf(request, byCall.get(index + 1) ?? []));
}

/** One call's rows of settle_reservation as what became of it. */
function settlementOf(request: SettlementRequest, rows: readonly z.infer<typeof settleRow>[]): Settlement {
  const [first] = rows;
  if (first === undefined || first.outcome === "not_found") return { kind: "not_found" };
  if (first.outcome === "not_reserved" || first.outcome === "too_much") {
    return { kind: first.outcome, metric: first.metric!, reserved: first.amount };
  }
  const reservation: ReservationRecord = {
    id: request.reservationId,
    userId: request.userId,
    items: rows.map((row) => ({ metric: row.metric!, amount: row.amount!, periodStart: row.period_start!, actual: row.actual })),
    state: first.outcome === "expired" ? "expired" : (first.state as ReservationState),
    createdAt: first.created_at!,
    expiresAt: first.expires_at!,
    settledAt: first.settled_at,
  };
  if (first.outcome === "committed" || first.outcome === "released") {
    return { kind: "settled", reservation, rows: rows.map((row) => ({ used: row.used!, reserved: row.reserved!, grantRemaining: row.grant_remaining })) };
  }
  return { kind: "unchanged", reservation, usedAfter: rows.map((row) => row.used) };
}

const reservationRow = z.object({
  id: z.string(),
  metrics: z.array(z.string()),
  amounts: z.array(z.string()),
  period_starts: z.array(z.number()),
  actual: z.array(z.string()).nullable(),
  state: z.enum(["held", "committed", "released"]),
  created_at: timestampColumn,
  expires_at: timestampColumn,
  settled_at: timestampColumn.nullable(),
});

/** A user's reservation as of `at` (expired when held past its expiry), or undefined. */
export async function findReservation(db: CommonQueryMethods, userId: string, id: string, at: Date): Promise<ReservationRecord | undefined> {
  const row = await db.maybeOne(sql.type(reservationRow)`
    select id, metrics, amounts::text[] as amounts, array(select extract(epoch from p) * 1000 from unnest(period_starts) as p)::float8[] as period_starts,
      actual::text[] as actual, state, created_at, expires_at, settled_at
    from reservations where user_id = ${userId} and id = ${id}::uuid
  `);
  if (row === null) return undefined;
  return {
    id: row.id,
    userId,
    items: row.metrics.map((metric, index) => ({
      metric,
      amount: BigInt(row.amounts[index]!),
      periodStart: new Date(row.period_starts[index]!),
      actual: row.actual === null ? null : BigInt(row.actual[index]!),
    })),
    state: row.state === "held" && row.expires_at.getTime() <= at.getTime() ? "expired" : row.state,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    settledAt: row.settled_at,
  };
}

/** Deletes reservations that expired before `retainedFrom` (any settlement came before expiry). */
export async function deleteSpentReservations(db: CommonQueryMethods, retainedFrom: Date): Promise<number> {
  const result = await db.query(sql.unsafe`delete from reservations where expires_at < ${sql.timestamp(retainedFrom)}`);
  return result.rowCount;
}
