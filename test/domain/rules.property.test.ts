import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Catalog, quotaLimit } from "../../src/domain/catalog.ts";
import { periodContaining, usageRowStart } from "../../src/domain/periods.ts";
import { fits } from "../../src/domain/quota.ts";
import { expiryOf, subscriptionStatus } from "../../src/domain/subscriptions.ts";
import { defaultMetrics, defaultPlans } from "../support/catalog.ts";
import { instant, operation } from "../support/arbitraries.ts";
import { calendarLabel, periodLabel, UsageModel } from "../support/usage-model.ts";

describe("periods", () => {
  it("contain their instant and tile time without gaps", () => {
    fc.assert(
      fc.property(instant, fc.constantFrom("day" as const, "week" as const, "month" as const, "year" as const), (at, reset) => {
        const period = periodContaining(reset, at)!;
        expect(period.start.getTime()).toBeLessThanOrEqual(at.getTime());
        expect(at.getTime()).toBeLessThan(period.end.getTime());
        expect(periodContaining(reset, period.end)!.start).toEqual(period.end);
        expect(periodContaining(reset, new Date(period.end.getTime() - 1))!.start).toEqual(period.start);
      }),
    );
  });

  it("agree with calendar labels", () => {
    fc.assert(
      fc.property(instant, instant, (a, b) => {
        for (const [reset, metric] of [["day", "api_calls"], ["month", "jobs"]] as const) {
          const samePeriod = usageRowStart(reset, a).getTime() === usageRowStart(reset, b).getTime();
          expect(samePeriod).toBe(periodLabel(metric, a) === periodLabel(metric, b));
        }
        for (const reset of ["week", "year"] as const) {
          expect(usageRowStart(reset, a).getTime() === usageRowStart(reset, b).getTime()).toBe(calendarLabel(reset, a) === calendarLabel(reset, b));
          expect(usageRowStart(reset, a).toISOString().slice(0, 10)).toBe(reset === "week" ? calendarLabel("week", a) : `${calendarLabel("year", a)}-01-01`);
        }
      }),
    );
  });
});

describe("the rules, against the reference model", () => {
  const catalog = new Catalog(defaultPlans, defaultMetrics);

  it("give the same decisions and usage for any sequence of operations", () => {
    fc.assert(
      fc.property(instant, fc.array(operation, { maxLength: 60 }), (start, operations) => {
        const model = new UsageModel();
        const usage = new Map<string, bigint>();
        let subscription = { userId: "u", planCode: "free", planVersion: 1, startedAt: start, expiresAt: null as Date | null, endedAt: null };
        let now = start;
        for (const op of operations) {
          if (op.kind === "advance") {
            now = new Date(now.getTime() + op.ms);
          } else if (op.kind === "plan") {
            subscription = { ...subscription, planCode: op.plan, startedAt: now, expiresAt: expiryOf(now, op.days) };
            model.changePlan(op.plan, op.days, now);
          } else {
            const plan = subscriptionStatus(subscription, now) === "active" ? catalog.plan(subscription.planCode)! : catalog.defaultPlan;
            const metric = catalog.metric(op.metric)!;
            const key = `${op.metric}@${usageRowStart(metric.resetPeriod, now).toISOString()}`;
            const used = usage.get(key) ?? 0n;
            const allowed = fits(used, op.amount, quotaLimit(plan, op.metric));
            // As usage_counters stores it: greatest(used + amount, 0).
            if (allowed) usage.set(key, used + op.amount < 0n ? 0n : used + op.amount);
            expect(allowed ? usage.get(key) : undefined).toBe(model.increment(op.metric, op.amount, now));
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
