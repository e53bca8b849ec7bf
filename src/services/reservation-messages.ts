import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ReservationSchema, ReservationState, type Reservation } from "../../gen/entitlements/v1/usage_pb.js";
import type { ReservationRecord, ReservationState as ReservationStateName } from "../db/reservations.ts";

const RESERVATION_STATES: Record<ReservationStateName, ReservationState> = {
  held: ReservationState.HELD,
  committed: ReservationState.COMMITTED,
  released: ReservationState.RELEASED,
  expired: ReservationState.EXPIRED,
};

/** A reservation as the API shows it: what it holds, where it stands, and what a commit counted. */
export function reservationMessage(reservation: ReservationRecord): Reservation {
  return create(ReservationSchema, {
    id: reservation.id,
    userId: reservation.userId,
    items: reservation.items.map((item) => ({ metric: item.metric, amount: item.amount })),
    expiresAt: timestampFromDate(reservation.expiresAt),
    state: RESERVATION_STATES[reservation.state],
    committed: reservation.state === "committed" ? reservation.items.map((item) => ({ metric: item.metric, amount: item.actual ?? 0n })) : [],
    createdAt: timestampFromDate(reservation.createdAt),
    settledAt: reservation.settledAt === null ? undefined : timestampFromDate(reservation.settledAt),
  });
}
