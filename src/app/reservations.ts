import type { CommonQueryMethods, DatabasePool } from "slonik";
import { callDeadline, queriesOf } from "../db/call-transaction.ts";
import type { IncrementBatcher } from "../db/increment-batcher.ts";
import { findReservation, settleReservations, type ReservationRecord, type Settlement, type SettlementRequest } from "../db/reservations.ts";
import type { Clock } from "../domain/clock.ts";
import { AccountSuspendedError, FailedPreconditionError, IdempotencyKeyReusedError, InvalidArgumentError, UnknownResourceError } from "../domain/errors.ts";
import { quotaOf, usageCeiling, type QuotaState } from "../domain/quota.ts";
import { quotaEntitlement } from "../domain/terms.ts";
import type { Entitlements } from "./entitlements.ts";
import { itemsCall, itemsRefused, sameItems, type UsageAmount, type UsageChange, type UsageChanges } from "./usage-changes.ts";

/** A reservation with the quotas of its metrics after the call. */
export type ReservationAnswer = { readonly reservation: ReservationRecord; readonly quotas: readonly QuotaState[] };

/**
 * Usage held for work whose cost is known only at its end: reserved all or nothing on the group
 * commit (as ConsumeUsage), then committed with what the work used, or released. What a held
 * reservation holds counts as used for every decision until then, and nothing after its expiry.
 */
export class Reservations {
  readonly #pool: DatabasePool;
  readonly #entitlements: Entitlements;
  readonly #usageChanges: UsageChanges;
  readonly #clock: Clock;
  readonly #batcher: IncrementBatcher | undefined;

  /** The call's deadline-bound transaction, or the pool (db/call-transaction.ts). */
  get #db(): CommonQueryMethods {
    return queriesOf(this.#pool);
  }

  constructor(pool: DatabasePool, entitlements: Entitlements, usageChanges: UsageChanges, clock: Clock, batcher?: IncrementBatcher) {
    this.#pool = pool;
    this.#entitlements = entitlements;
    this.#usageChanges = usageChanges;
    this.#clock = clock;
    this.#batcher = batcher;
  }

  /** Holds every item for `ttlSeconds`, or none (refused items are QuotaExceededError's refusals). */
  async reserve(userId: string, items: readonly UsageAmount[], ttlSeconds: number, key: string | undefined): Promise<UsageChange<ReservationAnswer>> {
    const now = this.#clock.now();
    const current = await this.#entitlements.currentPlan(userId, now);
    if (current.suspended) throw new AccountSuspendedError(userId);
    const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
    const call = itemsCall(userId, current, items, key, now, expiresAt);
    const outcome = await this.#usageChanges.decideItems(call);
    if (outcome.kind === "replayed") {
      const asked = items.map(({ metric, amount }) => ({ metric: metric.code, amount }));
      if (outcome.firstKind !== "reserve" || !sameItems(outcome.first, asked) || outcome.reservationId === null) throw new IdempotencyKeyReusedError(key!);
      const reservation = await this.get(userId, outcome.reservationId);
      const quotas = await Promise.all(items.map(({ metric }) => this.#entitlements.quota(userId, metric, current, now)));
      return { result: { reservation, quotas }, replayed: true };
    }
    const quotas = outcome.items.map((item, index) => quotaOf(items[index]!.metric, current, item.used, now, item.grantRemaining, item.reserved));
    if (outcome.kind === "refused") throw itemsRefused(userId, outcome.items, quotas, items);
    this.#entitlements.usageChanged(userId, false);
    const reservation: ReservationRecord = {
      id: outcome.reservationId!,
      userId,
      items: items.map(({ metric, amount }, index) => ({ metric: metric.code, amount, periodStart: call.items[index]!.periodStart, actual: null })),
      state: "held",
      createdAt: now,
      expiresAt,
      settledAt: null,
    };
    return { result: { reservation, quotas }, replayed: false };
  }

  /**
   * Counts what the work used (`actual`, by metric; each at most what was reserved) and frees the
   * rest. A repeat with the same amounts answers the first commit.
   */
  async commit(userId: string, reservationId: string, actual: readonly UsageAmount[]): Promise<UsageChange<ReservationAnswer>> {
    const now = this.#clock.now();
    const current = await this.#entitlements.currentPlan(userId, now);
    const commit = actual.map(({ metric, amount }) => ({
      metric: metric.code,
      amount,
      ceiling: usageCeiling(quotaEntitlement(current.plan, current.terms, metric.code, now).limit),
    }));
    const settlement = await this.#settle({ userId, reservationId, commit, now });
    switch (settlement.kind) {
      case "not_found":
        throw new UnknownResourceError("reservation", reservationId);
      case "not_reserved":
      case "too_much": {
        const index = actual.findIndex(({ metric }) => metric.code === settlement.metric);
        const description =
          settlement.kind === "not_reserved" ? `"${settlement.metric}" was not reserved` : `more than the ${settlement.reserved} reserved for "${settlement.metric}"`;
        throw new InvalidArgumentError([{ field: `actual[${index}]`, description }]);
      }
      case "unchanged": {
        const { reservation, usedAfter } = settlement;
        const counted = (metric: string) => actual.find((item) => item.metric.code === metric)?.amount ?? 0n;
        if (reservation.state !== "committed" || reservation.items.some((item) => item.actual !== counted(item.metric))) {
          throw new FailedPreconditionError(settledMessage(reservation, "committed"));
        }
        const quotas = reservation.items.map((item, index) => quotaOf(this.#entitlements.metric(item.metric), current, usedAfter[index]!, now));
        return { result: { reservation, quotas }, replayed: true };
      }
      case "settled": {
        const { reservation, rows } = settlement;
        const quotas = reservation.items.map((item, index) =>
          quotaOf(this.#entitlements.metric(item.metric), current, rows[index]!.used, now, rows[index]!.grantRemaining, rows[index]!.reserved),
        );
        this.#entitlements.usageChanged(userId, rows.some((row) => row.grantRemaining !== null), quotas);
        return { result: { reservation, quotas }, replayed: false };
      }
    }
  }

  /** Frees all that a held reservation holds; a released or expired one is answered as it stands. */
  async release(userId: string, reservationId: string): Promise<UsageChange<ReservationRecord>> {
    const settlement = await this.#settle({ userId, reservationId, commit: null, now: this.#clock.now() });
    switch (settlement.kind) {
      case "settled":
        this.#entitlements.usageChanged(userId, false);
        return { result: settlement.reservation, replayed: false };
      case "unchanged":
        if (settlement.reservation.state === "committed") throw new FailedPreconditionError(settledMessage(settlement.reservation, "released"));
        return { result: settlement.reservation, replayed: true };
      default:
        throw new UnknownResourceError("reservation", reservationId);
    }
  }

  /** A commit or release decided: on the group commit when there is one. */
  async #settle(request: SettlementRequest): Promise<Settlement> {
    return this.#batcher === undefined ? (await settleReservations(this.#db, [request]))[0]! : this.#batcher.submitSettlement(request, callDeadline());
  }

  /** A reservation as it stands now. */
  async get(userId: string, reservationId: string): Promise<ReservationRecord> {
    const reservation = await findReservation(this.#db, userId, reservationId, this.#clock.now());
    if (reservation === undefined) throw new UnknownResourceError("reservation", reservationId);
    return reservation;
  }
}

/** Why a settled reservation cannot be `wanted` now. */
function settledMessage(reservation: ReservationRecord, wanted: "committed" | "released"): string {
  switch (reservation.state) {
    case "expired":
      return `reservation ${reservation.id} expired at ${reservation.expiresAt.toISOString()}: what it held is free again`;
    case "released":
      return `reservation ${reservation.id} was released: nothing of it can be counted`;
    default:
      return wanted === "committed"
        ? `reservation ${reservation.id} was committed with other amounts`
        : `reservation ${reservation.id} was committed: what it used is counted (refund it with RefundUsage)`;
  }
}
