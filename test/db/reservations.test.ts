import { sql } from "slonik";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { consumeItemsBatch, type ItemsConsumption } from "../../src/db/consumptions.ts";
import { deleteSpentReservations, findReservation, settleReservations, type SettlementRequest } from "../../src/db/reservations.ts";
import { decideConsumption, lockUsageRow, resetUsageRows } from "../../src/db/usage-counters.ts";
import { findUsageLevel } from "../../src/db/usage-levels.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
const now = new Date("2026-04-10T00:00:00Z");
const periodStart = new Date("2026-04-01T00:00:00Z");
const later = (ms: number) => new Date(now.getTime() + ms);

beforeAll(async () => {
  database = await createTestDatabase();
});

const reserveCall = (userId: string, amount: bigint, ceiling: bigint, holdUntil = later(60_000)): ItemsConsumption => ({
  userId,
  items: [{ metric: "jobs", periodStart, amount, ceiling, limit: ceiling }],
  key: undefined,
  now,
  keyExpiresAt: later(86_400_000),
  holdUntil,
});

async function reserve(userId: string, amount: bigint, ceiling = 100n, holdUntil?: Date): Promise<string> {
  const [outcome] = await consumeItemsBatch(database.pool, [reserveCall(userId, amount, ceiling, holdUntil)]);
  if (outcome?.kind !== "granted") throw new Error(`reservation refused: ${JSON.stringify(outcome)}`);
  return outcome.reservationId!;
}

const settle = async (request: SettlementRequest) => (await settleReservations(database.pool, [request]))[0]!;

const level = async (userId: string, at = now) => {
  const { used, reserved } = await findUsageLevel(database.pool, { userId, metric: "jobs", periodStart }, at);
  return { used, reserved };
};

describe("holds and lone increments racing on one row", () => {
  it("never grant more than the ceiling between them: the lone path leaves rows with holds to the locked decision", async () => {
    const userId = "lone-racer";
    await reserve(userId, 1n, 30n);
    const increments = Array.from({ length: 60 }, () => decideConsumption(database.pool, { userId, metric: "jobs", periodStart, amount: 1n, ceiling: 30n, now }));
    const reserves = Array.from({ length: 30 }, () => consumeItemsBatch(database.pool, [reserveCall(userId, 1n, 30n)]));
    const [decisions, outcomes] = await Promise.all([Promise.all(increments), Promise.all(reserves)]);
    const counted = BigInt(decisions.filter((decision) => decision.granted).length);
    const held = BigInt(outcomes.filter(([outcome]) => outcome?.kind === "granted").length);
    expect(counted + held).toBe(29n);
    expect(await level(userId)).toEqual({ used: counted, reserved: held + 1n });
  });
});

describe("settleReservations", () => {
  it("settles a batch in arrival order: a repeat in the same batch answers the first, others settle their own", async () => {
    const userId = "batch-settler";
    const [first, second] = [await reserve(userId, 5n), await reserve(userId, 4n)];
    const commitFirst = { userId, reservationId: first, commit: [{ metric: "jobs", amount: 2n, ceiling: 100n }], now };
    const settled = await settleReservations(database.pool, [commitFirst, { userId, reservationId: second, commit: null, now }, commitFirst, { userId: "nobody", reservationId: second, commit: null, now }]);
    expect(settled.map((settlement) => settlement.kind)).toEqual(["settled", "settled", "unchanged", "not_found"]);
    expect(settled[0]).toMatchObject({ rows: [{ used: 2n, reserved: 4n }] });
    expect(settled[1]).toMatchObject({ reservation: { state: "released" }, rows: [{ used: 2n, reserved: 0n }] });
    expect(await level(userId)).toEqual({ used: 2n, reserved: 0n });
  });

  it("commits on the row it held, frees the rest, and answers a repeat unchanged", async () => {
    const userId = "settler";
    const id = await reserve(userId, 8n);
    const settled = await settle({ userId, reservationId: id, commit: [{ metric: "jobs", amount: 3n, ceiling: 100n }], now });
    expect(settled).toMatchObject({ kind: "settled", rows: [{ used: 3n, reserved: 0n, grantRemaining: null }] });
    const again = await settle({ userId, reservationId: id, commit: [{ metric: "jobs", amount: 3n, ceiling: 100n }], now });
    expect(again).toMatchObject({ kind: "unchanged", usedAfter: [3n], reservation: { state: "committed", items: [{ metric: "jobs", amount: 8n, actual: 3n }] } });
    expect(await level(userId)).toEqual({ used: 3n, reserved: 0n });
  });

  it("reports an item not reserved, or more than reserved, before changing anything", async () => {
    const userId = "over-settler";
    const id = await reserve(userId, 2n);
    expect(await settle({ userId, reservationId: id, commit: [{ metric: "jobs", amount: 3n, ceiling: 100n }], now })).toEqual({
      kind: "too_much",
      metric: "jobs",
      reserved: 2n,
    });
    expect(await settle({ userId, reservationId: id, commit: [{ metric: "api_calls", amount: 1n, ceiling: 100n }], now })).toMatchObject({
      kind: "not_reserved",
    });
    expect(await settle({ userId: "someone-else", reservationId: id, commit: null, now })).toEqual({ kind: "not_found" });
    expect(await level(userId)).toEqual({ used: 0n, reserved: 2n });
  });

  it("an expired reservation is answered as expired, and holds nothing from its expiry on", async () => {
    const userId = "expirer";
    const id = await reserve(userId, 4n, 100n, later(1000));
    expect(await level(userId, later(999))).toEqual({ used: 0n, reserved: 4n });
    expect(await level(userId, later(1000))).toEqual({ used: 0n, reserved: 0n });
    expect(await settle({ userId, reservationId: id, commit: [], now: later(1000) })).toMatchObject({
      kind: "unchanged",
      reservation: { state: "expired" },
    });
    expect((await findReservation(database.pool, userId, id, later(1000)))?.state).toBe("expired");
    expect((await findReservation(database.pool, userId, id, later(999)))?.state).toBe("held");
  });
});

describe("rows with holds", () => {
  it("lockUsageRow reads what they hold; a reset sets the count to 0 and keeps the holds", async () => {
    const userId = "reset-holder";
    await reserve(userId, 5n);
    await decideConsumption(database.pool, { userId, metric: "jobs", periodStart, amount: 3n, ceiling: 100n, now });
    expect(await database.pool.transaction((tx) => lockUsageRow(tx, { userId, metric: "jobs", periodStart }, now))).toEqual({ used: 3n, reserved: 5n });
    await resetUsageRows(database.pool, userId, [{ metric: "jobs", periodStart }]);
    expect(await level(userId)).toEqual({ used: 0n, reserved: 5n });
  });

  it("deleteSpentReservations drops reservations that expired before the retention (settled or not), and nothing else", async () => {
    const userId = "spent";
    const expired = await reserve(userId, 1n, 100n, later(1000));
    const held = await reserve(userId, 2n, 100n, later(86_400_000));
    expect(await level(userId, later(2000))).toEqual({ used: 0n, reserved: 2n });
    await deleteSpentReservations(database.pool, now);
    expect(await findReservation(database.pool, userId, expired, later(2000))).toMatchObject({ state: "expired" });
    await deleteSpentReservations(database.pool, later(1500));
    expect(await findReservation(database.pool, userId, expired, later(2000))).toBeUndefined();
    expect(await findReservation(database.pool, userId, held, later(2000))).toMatchObject({ state: "held" });
    expect(await level(userId, later(2000))).toEqual({ used: 0n, reserved: 2n });
  });

  it("settling the hold that expires first moves the row's reserved_until to the next held expiry", async () => {
    const userId = "next-expiry";
    const first = await reserve(userId, 3n, 100n, later(1000));
    await reserve(userId, 4n, 100n, later(5000));
    await settle({ userId, reservationId: first, commit: [{ metric: "jobs", amount: 1n, ceiling: 100n }], now });
    const row = await database.pool.one(sql.type(z.object({ reserved: z.bigint(), reserved_until: z.number() }))`
      select reserved, reserved_until from usage_counters where user_id = ${userId}
    `);
    expect(row).toEqual({ reserved: 4n, reserved_until: later(5000).getTime() });
  });

  it("a row's reserved stands until its earliest hold expires, then is summed again from the reservations", async () => {
    const userId = "lapsing";
    await reserve(userId, 3n, 100n, later(1000));
    await reserve(userId, 4n, 100n, later(5000));
    expect(await findUsageLevel(database.pool, { userId, metric: "jobs", periodStart }, now)).toEqual({ used: 0n, reserved: 7n, reservedUntil: later(1000), readAt: now });
    expect(await findUsageLevel(database.pool, { userId, metric: "jobs", periodStart }, later(1000))).toEqual({ used: 0n, reserved: 4n, reservedUntil: later(5000), readAt: later(1000) });
    // A decision after the first expiry writes the sum back: 100 - 4 held leaves 96.
    expect(await decideConsumption(database.pool, { userId, metric: "jobs", periodStart, amount: 96n, ceiling: 100n, now: later(1000) })).toMatchObject({ granted: true, reserved: 4n });
    expect(await decideConsumption(database.pool, { userId, metric: "jobs", periodStart, amount: 1n, ceiling: 100n, now: later(1000) })).toMatchObject({ granted: false });
    expect(await findUsageLevel(database.pool, { userId, metric: "jobs", periodStart }, later(5000))).toEqual({ used: 96n, reserved: 0n, reservedUntil: null, readAt: later(5000) });
  });
});
