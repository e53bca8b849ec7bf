import fc from "fast-check";
import { METRICS, type ModelMetric, type ModelPlan } from "./usage-model.ts";

/** Instants from 1999 to 2101, dense around period boundaries. */
export const instant = fc.oneof(
  fc.date({ min: new Date("1999-01-01T00:00:00Z"), max: new Date("2101-01-01T00:00:00Z"), noInvalidDate: true }),
  fc
    .record({ year: fc.integer({ min: 2000, max: 2100 }), month: fc.integer({ min: 0, max: 11 }), offset: fc.integer({ min: -2, max: 1 }) })
    .map(({ year, month, offset }) => new Date(Date.UTC(year, month, 1) + offset)),
);

export type Operation =
  | { kind: "increment"; metric: ModelMetric; amount: bigint }
  | { kind: "plan"; plan: ModelPlan; days: number | undefined }
  | { kind: "advance"; ms: number };

/** One step of a usage history: an increment, a plan change or the clock moving on. */
export const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({
    kind: fc.constant("increment" as const),
    metric: fc.constantFrom(...METRICS),
    amount: fc.bigInt({ min: -60n, max: 60n }),
  }).map((op) => (isCounter(op.metric) && op.amount <= 0n ? { ...op, amount: 1n - op.amount } : op.amount === 0n ? { ...op, amount: 7n } : op)),
  fc.record({
    kind: fc.constant("plan" as const),
    plan: fc.constantFrom<ModelPlan>("free", "pro", "enterprise"),
    days: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
  }),
  fc.record({
    kind: fc.constant("advance" as const),
    ms: fc.oneof(fc.constantFrom(1, 999, 3_600_000, 86_400_000 - 1, 86_400_000, 31 * 86_400_000), fc.integer({ min: 1, max: 40 * 86_400_000 })),
  }),
);

function isCounter(metric: ModelMetric): boolean {
  return metric !== "storage_mb";
}


export type TermsOperation =
  | { kind: "override"; metric: ModelMetric; limit: bigint | null; days: number | undefined }
  | { kind: "grant"; metric: ModelMetric; amount: bigint; days: number | undefined }
  | { kind: "trial"; plan: ModelPlan; days: number }
  | { kind: "schedule"; plan: ModelPlan; days: number };

/** A change of the account's terms: a quota override, a grant, a trial, a scheduled plan change. */
export const termsOperation: fc.Arbitrary<TermsOperation> = fc.oneof(
  fc.record({
    kind: fc.constant("override" as const),
    metric: fc.constantFrom(...METRICS),
    limit: fc.option(fc.bigInt({ min: 0n, max: 80n }), { nil: null }),
    days: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
  }),
  fc.record({
    kind: fc.constant("grant" as const),
    metric: fc.constantFrom(...METRICS.filter(isCounter)),
    amount: fc.bigInt({ min: 1n, max: 40n }),
    days: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
  }),
  fc.record({ kind: fc.constant("trial" as const), plan: fc.constantFrom<ModelPlan>("pro", "enterprise"), days: fc.integer({ min: 1, max: 20 }) }),
  fc.record({ kind: fc.constant("schedule" as const), plan: fc.constantFrom<ModelPlan>("free", "pro", "enterprise"), days: fc.integer({ min: 1, max: 40 }) }),
);

export type ConsumptionOperation =
  | { kind: "consume"; items: { metric: ModelMetric; amount: bigint }[] }
  | { kind: "refund"; metric: ModelMetric; amount: bigint }
  | { kind: "set"; value: bigint };

/** Usage beyond one increment: several metrics at once, a refund, a gauge's level. */
export const consumptionOperation: fc.Arbitrary<ConsumptionOperation> = fc.oneof(
  fc.record({
    kind: fc.constant("consume" as const),
    items: fc.uniqueArray(fc.record({ metric: fc.constantFrom(...METRICS), amount: fc.bigInt({ min: 1n, max: 40n }) }), {
      minLength: 1,
      maxLength: 4,
      selector: (item) => item.metric,
    }),
  }),
  fc.record({ kind: fc.constant("refund" as const), metric: fc.constantFrom(...METRICS.filter(isCounter)), amount: fc.bigInt({ min: 1n, max: 20n }) }),
  fc.record({ kind: fc.constant("set" as const), value: fc.bigInt({ min: 0n, max: 150n }) }),
);


export type ReservationOperation =
  | { kind: "reserve"; items: { metric: ModelMetric; amount: bigint }[]; ttlSeconds: number }
  | { kind: "commit"; pick: number; quarters: number[] }
  | { kind: "release"; pick: number };

/**
 * Reservations: made with a TTL that the clock's steps can pass; committed with a share (in
 * quarters) of each item, or released; `pick` chooses among those made so far.
 */
export const reservationOperation: fc.Arbitrary<ReservationOperation> = fc.oneof(
  fc.record({
    kind: fc.constant("reserve" as const),
    items: fc.uniqueArray(fc.record({ metric: fc.constantFrom(...METRICS), amount: fc.bigInt({ min: 1n, max: 40n }) }), {
      minLength: 1,
      maxLength: 3,
      selector: (item) => item.metric,
    }),
    ttlSeconds: fc.constantFrom(1, 3600, 86_400),
  }),
  fc.record({ kind: fc.constant("commit" as const), pick: fc.nat(), quarters: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 3, maxLength: 3 }) }),
  fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }),
);

/** One step of a history across replicas: what happens, and through which replica. */
export const replicatedStep = fc.record({
  op: fc.oneof(operation, operation, termsOperation, consumptionOperation, reservationOperation),
  replica: fc.integer({ min: 0, max: 1 }),
});
