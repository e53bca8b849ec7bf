import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { instant, operation } from "../support/arbitraries.ts";
import { createTestService, type TestService } from "../support/service.ts";
import { METRICS, UsageModel } from "../support/usage-model.ts";

/**
 * The whole service (router, validation, SQL on real PostgreSQL, injected clock) against the
 * reference model: random histories of increments, gauge changes, plan changes and rollovers.
 */
let service: TestService;
beforeAll(async () => {
  service = await createTestService();
});

let users = 0;

describe("the service, against the reference model", () => {
  it("gives the same decisions and usage for any history", async () => {
    await fc.assert(
      fc.asyncProperty(instant, fc.array(operation, { minLength: 1, maxLength: 25 }), async (start, operations) => {
        const userId = `model-${users++}`;
        const model = new UsageModel();
        service.clock.set(start);
        for (const op of operations) {
          const now = service.clock.now();
          if (op.kind === "advance") {
            service.clock.advance(op.ms);
          } else if (op.kind === "plan") {
            await service.client.upgradePlan({ userId, planCode: op.plan, durationDays: op.days });
            model.changePlan(op.plan, op.days, now);
          } else {
            const check = await service.client.checkQuota({ userId, metric: op.metric, amount: op.amount });
            expect(check.allowed).toBe(model.allows(op.metric, op.amount, now));
            const expected = model.increment(op.metric, op.amount, now);
            const result = await service.client.incrementUsage({ userId, metric: op.metric, amount: op.amount }).then(
              (response) => response.quota?.used,
              (error: unknown) => {
                expect(ConnectError.from(error).code).toBe(Code.ResourceExhausted);
                return undefined;
              },
            );
            expect(result).toBe(expected);
          }
        }
        const now = service.clock.now();
        const { quotas } = await service.client.getUsage({ userId });
        expect(Object.fromEntries(quotas.map((quota) => [quota.metric, quota.used]))).toEqual(
          Object.fromEntries(METRICS.map((metric) => [metric, model.used(metric, now)])),
        );
        expect((await service.client.getPlan({ userId })).plan?.code).toBe(model.currentPlan(now));
      }),
      { numRuns: 40 },
    );
  });
});
