import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { composeService } from "../../src/compose.ts";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { instant, replicatedStep } from "../support/arbitraries.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase } from "../support/database.ts";
import { inMemoryClient, SERVICE_TOKEN, TEST_SETTINGS } from "../support/service.ts";
import { METRICS, UsageModel } from "../support/usage-model.ts";

/**
 * The whole service (router, validation, SQL on real PostgreSQL, injected clock) against the
 * reference model: random histories of increments, gauge changes, plan changes, rollovers,
 * overrides, grants with expiry, trials, scheduled changes, all-or-nothing consumptions, refunds,
 * gauge levels and reservations (committed, released or left to expire), each step through one of two
 * replicas of one database. The replicas cache nothing, so every answer must be exact: what the
 * caches add is tested apart (replica-cache, two-processes).
 */
const clock = new TestClock("2026-03-15T12:00:00Z");
const replicas: Client<typeof EntitlementService>[] = [];
beforeAll(async () => {
  const database = await createTestDatabase();
  const settings = loadConfig({ SERVICE_TOKENS: SERVICE_TOKEN, JWT_SECRET: "property-secret-0123456789-0123456789", USAGE_CACHE_SIZE: "0", STANDING_CACHE_SIZE: "0" });
  for (let i = 0; i < 2; i++) {
    const { served } = await composeService({ ...TEST_SETTINGS, ...settings }, database.pool, { clock, logger: createLogger("silent") });
    replicas.push(inMemoryClient(served));
  }
});

let users = 0;
const DAY_MS = 86_400_000;
const after = (days: number) => timestampFromDate(new Date(clock.now().getTime() + days * DAY_MS));

async function refusedWith(call: Promise<unknown>): Promise<Code | undefined> {
  return call.then(
    () => undefined,
    (error: unknown) => ConnectError.from(error).code,
  );
}

describe("the service across two replicas, against the reference model", () => {
  it("gives the same decisions, usage, grants and plans for any history", async () => {
    await fc.assert(
      fc.asyncProperty(instant, fc.array(replicatedStep, { minLength: 1, maxLength: 25 }), async (start, steps) => {
        const userId = `model-${users++}`;
        const model = new UsageModel();
        const reservationIds: string[] = [];
        clock.set(start);
        for (const { op, replica } of steps) {
          const client = replicas[replica]!;
          const now = clock.now();
          switch (op.kind) {
            case "advance":
              clock.advance(op.ms);
              break;
            case "plan":
              await client.upgradePlan({ userId, planCode: op.plan, durationDays: op.days });
              model.changePlan(op.plan, op.days, now);
              break;
            case "override":
              await client.setQuotaOverride({ userId, metric: op.metric, limit: op.limit ?? undefined, expiresAt: op.days === undefined ? undefined : after(op.days), reason: "model" });
              model.setQuotaOverride(op.metric, op.limit, op.days, now);
              break;
            case "grant":
              await client.grantUsage({ userId, metric: op.metric, amount: op.amount, expiresAt: op.days === undefined ? undefined : after(op.days), idempotencyKey: `g${users}-${now.getTime()}-${Math.random()}`, reason: "model" });
              model.grant(op.metric, op.amount, op.days, now);
              break;
            case "trial": {
              const refused = await refusedWith(client.startTrial({ userId, planCode: op.plan, days: op.days }));
              expect(refused).toBe(model.startTrial(op.plan, op.days, now) ? undefined : Code.FailedPrecondition);
              break;
            }
            case "schedule":
              await client.schedulePlanChange({ userId, planCode: op.plan, when: { case: "at", value: after(op.days) } });
              model.schedule(op.plan, op.days, now);
              break;
            case "consume": {
              const expected = model.consume(op.items, now);
              const result = await client.consumeUsage({ userId, items: op.items }).then(
                (response) => response.quotas.map((quota) => quota.used),
                (error: unknown) => {
                  expect(ConnectError.from(error).code).toBe(Code.ResourceExhausted);
                  return undefined;
                },
              );
              expect(result).toEqual(expected);
              break;
            }
            case "refund": {
              const refused = await refusedWith(client.refundUsage({ userId, metric: op.metric, amount: op.amount, idempotencyKey: `r${now.getTime()}-${Math.random()}`, reason: "model" }));
              expect(refused).toBe(model.refund(op.metric, op.amount, now) ? undefined : Code.FailedPrecondition);
              break;
            }
            case "set": {
              const refused = await refusedWith(client.setUsage({ userId, metric: "storage_mb", value: op.value }));
              expect(refused).toBe(model.setLevel("storage_mb", op.value, now) ? undefined : Code.ResourceExhausted);
              break;
            }
            case "reserve": {
              const expected = model.reserve(op.items, op.ttlSeconds, now);
              const result = await client.reserveUsage({ userId, items: op.items, ttlSeconds: op.ttlSeconds }).then(
                (response) => response,
                (error: unknown) => {
                  expect(ConnectError.from(error).code).toBe(Code.ResourceExhausted);
                  return undefined;
                },
              );
              expect(result === undefined).toBe(expected === undefined);
              if (result !== undefined) {
                reservationIds.push(result.reservation!.id);
                expect(result.quotas.map((quota) => quota.reserved)).toEqual(op.items.map((item) => model.reserved(item.metric, now)));
              }
              break;
            }
            case "commit":
            case "release": {
              if (reservationIds.length === 0) break;
              const index = op.pick % reservationIds.length;
              const reservationId = reservationIds[index]!;
              const reserved = model.reservations[index]!.items;
              if (op.kind === "commit") {
                const actual = reserved.map((item, j) => (item.amount * BigInt(op.quarters[j] ?? 0)) / 4n);
                const expected = model.commit(index, actual, now);
                const items = reserved.map((item, j) => ({ metric: item.metric, amount: actual[j]! }));
                const result = await client.commitReservation({ userId, reservationId, actual: items }).then(
                  (response) => ({ kind: response.replayed ? "repeated" : "settled", used: response.quotas.map((quota) => quota.used) }),
                  (error: unknown) => {
                    expect(ConnectError.from(error).code).toBe(Code.FailedPrecondition);
                    return { kind: "refused" };
                  },
                );
                expect(result).toEqual(expected.kind === "expired" ? { kind: "refused" } : expected);
              } else {
                const expected = model.release(index, now);
                const result = await client.releaseReservation({ userId, reservationId }).then(
                  (response) => (response.replayed ? "repeated" : "settled"),
                  (error: unknown) => {
                    expect(ConnectError.from(error).code).toBe(Code.FailedPrecondition);
                    return "refused";
                  },
                );
                expect(result).toBe(expected.kind);
              }
              break;
            }
            case "increment": {
              const check = await client.checkQuota({ userId, metric: op.metric, amount: op.amount });
              expect(check.allowed).toBe(model.allows(op.metric, op.amount, now));
              expect(check.quota?.remaining).toBe(model.remaining(op.metric, now) ?? undefined);
              const expected = model.increment(op.metric, op.amount, now);
              const result = await client.incrementUsage({ userId, metric: op.metric, amount: op.amount }).then(
                (response) => response.quota?.used,
                (error: unknown) => {
                  expect(ConnectError.from(error).code).toBe(Code.ResourceExhausted);
                  return undefined;
                },
              );
              expect(result).toBe(expected);
            }
          }
        }
        const now = clock.now();
        for (const client of replicas) {
          const { quotas } = await client.getUsage({ userId });
          const shown = new Map(quotas.map((quota) => [quota.metric, quota]));
          for (const metric of METRICS) {
            if (!shown.has(metric)) continue;
            expect([metric, shown.get(metric)?.used, shown.get(metric)?.grantRemaining, shown.get(metric)?.reserved]).toEqual([
              metric,
              model.used(metric, now),
              model.grantRemaining(metric, now),
              model.reserved(metric, now),
            ]);
          }
          expect((await client.getPlan({ userId })).plan?.code).toBe(model.currentPlan(now));
        }
      }),
      { numRuns: 40 },
    );
  });

  it("draws grants exactly, earliest expiry first, through expiries and resets", async () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant("grant" as const), amount: fc.bigInt({ min: 1n, max: 12n }), days: fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }) }),
      fc.record({ kind: fc.constant("increment" as const), amount: fc.bigInt({ min: 1n, max: 15n }) }),
      fc.record({ kind: fc.constant("advance" as const), days: fc.integer({ min: 1, max: 12 }) }),
    );
    await fc.assert(
      fc.asyncProperty(instant, fc.array(fc.tuple(step, fc.integer({ min: 0, max: 1 })), { minLength: 1, maxLength: 30 }), async (start, steps) => {
        const userId = `grants-${users++}`;
        const model = new UsageModel();
        clock.set(start);
        for (const [op, replica] of steps) {
          const client = replicas[replica]!;
          const now = clock.now();
          if (op.kind === "advance") {
            clock.advance(op.days * DAY_MS);
          } else if (op.kind === "grant") {
            await client.grantUsage({ userId, metric: "jobs", amount: op.amount, expiresAt: op.days === undefined ? undefined : after(op.days), idempotencyKey: `k${now.getTime()}-${Math.random()}`, reason: "model" });
            model.grant("jobs", op.amount, op.days, now);
          } else {
            const expected = model.increment("jobs", op.amount, now);
            const result = await client.incrementUsage({ userId, metric: "jobs", amount: op.amount }).then(
              (response) => response.quota?.grantRemaining,
              () => undefined,
            );
            expect(result).toBe(expected === undefined ? undefined : model.grantRemaining("jobs", now));
          }
          const check = await client.checkQuota({ userId, metric: "jobs" });
          expect(check.quota?.grantRemaining).toBe(model.grantRemaining("jobs", clock.now()));
        }
      }),
      { numRuns: 40 },
    );
  });

  it("holds, commits and releases reservations exactly among grants, increments, expiries and resets", async () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant("grant" as const), amount: fc.bigInt({ min: 1n, max: 8n }), days: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }) }),
      fc.record({ kind: fc.constant("increment" as const), amount: fc.bigInt({ min: 1n, max: 8n }) }),
      fc.record({ kind: fc.constant("reserve" as const), amount: fc.bigInt({ min: 1n, max: 12n }), ttlSeconds: fc.constantFrom(60, 3600, 86_400) }),
      fc.record({ kind: fc.constant("commit" as const), pick: fc.nat(), quarters: fc.integer({ min: 0, max: 4 }) }),
      fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant("advance" as const), ms: fc.constantFrom(59_000, 3_600_000, 86_400_000, 10 * 86_400_000) }),
    );
    await fc.assert(
      fc.asyncProperty(instant, fc.array(fc.tuple(step, fc.integer({ min: 0, max: 1 })), { minLength: 1, maxLength: 30 }), async (start, steps) => {
        const userId = `holds-${users++}`;
        const model = new UsageModel();
        const ids: string[] = [];
        clock.set(start);
        for (const [op, replica] of steps) {
          const client = replicas[replica]!;
          const now = clock.now();
          if (op.kind === "advance") {
            clock.advance(op.ms);
          } else if (op.kind === "grant") {
            await client.grantUsage({ userId, metric: "jobs", amount: op.amount, expiresAt: op.days === undefined ? undefined : after(op.days), idempotencyKey: `h${now.getTime()}-${Math.random()}`, reason: "model" });
            model.grant("jobs", op.amount, op.days, now);
          } else if (op.kind === "increment") {
            const refused = await refusedWith(client.incrementUsage({ userId, metric: "jobs", amount: op.amount }));
            expect(refused).toBe(model.increment("jobs", op.amount, now) === undefined ? Code.ResourceExhausted : undefined);
          } else if (op.kind === "reserve") {
            const made = model.reserve([{ metric: "jobs", amount: op.amount }], op.ttlSeconds, now);
            const result = await client.reserveUsage({ userId, items: [{ metric: "jobs", amount: op.amount }], ttlSeconds: op.ttlSeconds }).catch(() => undefined);
            expect(result === undefined).toBe(made === undefined);
            if (result !== undefined) ids.push(result.reservation!.id);
          } else if (ids.length > 0) {
            const index = op.pick % ids.length;
            const reservationId = ids[index]!;
            if (op.kind === "commit") {
              const amount = (model.reservations[index]!.items[0]!.amount * BigInt(op.quarters)) / 4n;
              const expected = model.commit(index, [amount], now);
              const refused = await refusedWith(client.commitReservation({ userId, reservationId, actual: [{ metric: "jobs", amount }] }));
              expect(refused).toBe(expected.kind === "refused" || expected.kind === "expired" ? Code.FailedPrecondition : undefined);
            } else {
              const expected = model.release(index, now);
              expect(await refusedWith(client.releaseReservation({ userId, reservationId }))).toBe(expected.kind === "refused" ? Code.FailedPrecondition : undefined);
            }
          }
          const at = clock.now();
          const { quota } = await client.checkQuota({ userId, metric: "jobs" });
          expect([quota?.used, quota?.reserved, quota?.grantRemaining, quota?.remaining]).toEqual([
            model.used("jobs", at),
            model.reserved("jobs", at),
            model.grantRemaining("jobs", at),
            model.remaining("jobs", at),
          ]);
        }
      }),
      { numRuns: 60 },
    );
  });
});
