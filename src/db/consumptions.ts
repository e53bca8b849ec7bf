import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
import { lockOrder, rowArrays, type UsageRowKey } from "./usage-counters.ts";

/** One item of a multi-metric consumption: the row it counts on and the rule it is decided by. */
export type ItemConsumption = {
  readonly metric: string;
  /** Start of the period the row counts (the epoch for a gauge). */
  readonly periodStart: Date;
  readonly amount: bigint;
  /** used + amount must not pass this, unless grants cover the rest. */
  readonly ceiling: bigint;
  /** The limit it is decided on, remembered under the key for replays. */
  readonly limit: bigint | null;
};

/** A ConsumeUsage call, or a ReserveUsage call (with `holdUntil`): all of its items or none. */
export type ItemsConsumption = {
  readonly userId: string;
  readonly items: readonly ItemConsumption[];
  readonly key: string | undefined;
  /** For a reservation: its items are held until then rather than counted. */
  readonly holdUntil?: Date;
  readonly now: Date;
  /** Until when its key is remembered. */
  readonly keyExpiresAt: Date;
};

/**
 * What became of one item: whether it fit, its row's amount and what the row's reservations hold
 * after the call, what grants hold when it weighed them.
 */
export type ItemOutcome = { readonly fits: boolean; readonly used: bigint; readonly reserved: bigint; readonly grantRemaining: bigint | null };

/** What the first call under a key asked for one metric, and answered. */
export type RememberedItem = { readonly metric: string; readonly amount: bigint; readonly usedAfter: bigint; readonly limit: bigint | null };

export type ItemsOutcome =
  | {
      readonly kind: "granted" | "refused";
      readonly items: readonly ItemOutcome[];
      /** The reservation a granted ReserveUsage call made. */
      readonly reservationId: string | null;
    }
  | {
      readonly kind: "replayed";
      /** The RPC that used the key first: "consume", "refund", "set" or "reserve". */
      readonly firstKind: string;
      /** The reservation made under the key, if any. */
      readonly reservationId: string | null;
      readonly first: readonly RememberedItem[];
      readonly createdAt: Date;
    };

const itemRow = z.object({
  call: z.number(),
  item: z.number(),
  outcome: z.string(),
  fits: z.boolean().nullable(),
  used: z.bigint().nullable(),
  grant_remaining: z.bigint().nullable(),
  reserved: z.bigint().nullable(),
  reservation_id: z.string().nullable(),
  first_metric: z.string().nullable(),
  first_amount: z.bigint().nullable(),
  first_limit: z.bigint().nullable(),
  first_created_at: timestampColumn.nullable(),
});

/**
 * ConsumeUsage and ReserveUsage calls that arrived together, in one statement (the
 * consume_items_batch function): every row of the batch locked in key order, then each call
 * decided in arrival order, all of its items or none. Outcomes in the order given.
 */
export async function consumeItemsBatch(db: CommonQueryMethods, calls: readonly ItemsConsumption[]): Promise<ItemsOutcome[]> {
  // Every call's items, flattened in arrival order, each with its user and its call (from 1).
  const items: (UsageRowKey & { readonly call: number } & ItemConsumption)[] = calls.flatMap((call, index) =>
    call.items.map((item) => ({ ...item, userId: call.userId, call: index + 1 })),
  );
  const { rows, positionOf } = lockOrder(items);
  const found = await db.any(sql.prepared("usage_consume_items_batch", itemRow)`
    select call, item, outcome, fits, used, grant_remaining, reserved, reservation_id, first_metric, first_amount, first_limit, first_created_at
    from consume_items_batch(
      ${rowArrays(rows)},
      ${sql.array(items.map((item) => item.call), "int4")}::integer[],
      ${sql.array(items.map(positionOf), "int4")}::integer[],
      ${sql.array(items.map((item) => item.amount), "int8")}::bigint[],
      ${sql.array(items.map((item) => item.ceiling), "int8")}::bigint[],
      ${sql.array(items.map((item) => item.limit), "int8")}::bigint[],
      ${sql.array(calls.map((call) => call.userId), "text")}::text[],
      ${sql.array(calls.map((call) => call.key ?? null), "text")}::text[],
      ${sql.array(calls.map((call) => call.holdUntil?.toISOString() ?? null), "timestamptz")}::timestamptz[],
      ${sql.timestamp(calls[0]!.now)},
      ${sql.timestamp(calls[0]!.keyExpiresAt)}
    )
  `);
  const byCall = Map.groupBy(found, (row) => row.call);
  return calls.map((_, index) => itemsOutcome(byCall.get(index + 1)!.toSorted((a, b) => a.item - b.item)));
}

function itemsOutcome(rows: readonly z.infer<typeof itemRow>[]): ItemsOutcome {
  const [first] = rows;
  if (first!.outcome.startsWith("replayed:")) {
    return {
      kind: "replayed",
      firstKind: first!.outcome.slice("replayed:".length),
      reservationId: first!.reservation_id,
      createdAt: first!.first_created_at!,
      first: rows.map((row) => ({ metric: row.first_metric!, amount: row.first_amount!, usedAfter: row.used!, limit: row.first_limit })),
    };
  }
  return {
    kind: first!.outcome === "granted" ? "granted" : "refused",
    items: rows.map((row) => ({ fits: row.fits === true, used: row.used!, reserved: row.reserved!, grantRemaining: row.grant_remaining })),
    reservationId: first!.reservation_id,
  };
}
