import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { billingPeriodContaining, GAUGE_PERIOD_START, periodContaining, usageRowStart } from "../../src/domain/periods.ts";
import { instant } from "../support/arbitraries.ts";

describe("periodContaining", () => {
  it("gives the UTC calendar month", () => {
    expect(periodContaining("month", new Date("2026-03-15T12:34:56Z"))).toEqual({
      start: new Date("2026-03-01T00:00:00Z"),
      end: new Date("2026-04-01T00:00:00Z"),
    });
  });

  it("rolls the month over at the first instant of the next", () => {
    expect(periodContaining("month", new Date("2026-01-31T23:59:59.999Z"))?.start).toEqual(new Date("2026-01-01T00:00:00Z"));
    expect(periodContaining("month", new Date("2026-02-01T00:00:00Z"))?.start).toEqual(new Date("2026-02-01T00:00:00Z"));
  });

  it("ends December in the next year", () => {
    expect(periodContaining("month", new Date("2026-12-31T23:59:59Z"))?.end).toEqual(new Date("2027-01-01T00:00:00Z"));
  });

  it("knows leap years", () => {
    expect(periodContaining("day", new Date("2028-02-29T10:00:00Z"))).toEqual({
      start: new Date("2028-02-29T00:00:00Z"),
      end: new Date("2028-03-01T00:00:00Z"),
    });
    expect(periodContaining("month", new Date("2028-02-10T00:00:00Z"))?.end).toEqual(new Date("2028-03-01T00:00:00Z"));
  });

  it("gives the UTC day regardless of the host's time zone", () => {
    expect(periodContaining("day", new Date("2026-07-04T23:59:59.999-00:00"))).toEqual({
      start: new Date("2026-07-04T00:00:00Z"),
      end: new Date("2026-07-05T00:00:00Z"),
    });
    expect(periodContaining("day", new Date("2026-07-05T01:00:00+02:00"))?.start).toEqual(new Date("2026-07-04T00:00:00Z"));
  });

  it("gives the ISO week, Monday 00:00 UTC to the next Monday", () => {
    // 2026-12-06 is a Sunday: the last instant of the week that began on Monday 2026-11-30.
    expect(periodContaining("week", new Date("2026-12-06T23:59:59.999Z"))).toEqual({
      start: new Date("2026-11-30T00:00:00Z"),
      end: new Date("2026-12-07T00:00:00Z"),
    });
    expect(periodContaining("week", new Date("2026-12-07T00:00:00Z"))?.start).toEqual(new Date("2026-12-07T00:00:00Z"));
    // A week across the turn of a year and across the end of February in a leap year.
    expect(periodContaining("week", new Date("2027-01-03T12:00:00Z"))?.start).toEqual(new Date("2026-12-28T00:00:00Z"));
    expect(periodContaining("week", new Date("2028-03-01T00:00:00Z"))).toEqual({
      start: new Date("2028-02-28T00:00:00Z"),
      end: new Date("2028-03-06T00:00:00Z"),
    });
  });

  it("gives the UTC year", () => {
    expect(periodContaining("year", new Date("2026-12-31T23:59:59.999Z"))).toEqual({
      start: new Date("2026-01-01T00:00:00Z"),
      end: new Date("2027-01-01T00:00:00Z"),
    });
    expect(periodContaining("year", new Date("2027-01-01T00:00:00Z"))?.start).toEqual(new Date("2027-01-01T00:00:00Z"));
  });

  it("gives the period of each instant, whatever instant of whatever period was asked before", () => {
    const DAY = 86_400_000;
    const starts = {
      day: (at: Date) => Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()),
      week: (at: Date) => Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()) - ((at.getUTCDay() + 6) % 7) * DAY,
      month: (at: Date) => Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1),
      year: (at: Date) => Date.UTC(at.getUTCFullYear(), 0, 1),
    };
    fc.assert(
      fc.property(fc.constantFrom("day", "week", "month", "year" as const), fc.array(instant, { minLength: 1, maxLength: 6 }), (kind, instants) => {
        for (const at of instants) {
          const period = periodContaining(kind, at)!;
          expect(period.start.getTime()).toBe(starts[kind](at));
          expect(period.end.getTime()).toBe(starts[kind](new Date(period.end.getTime())));
          expect(at.getTime()).toBeLessThan(period.end.getTime());
          expect(starts[kind](new Date(period.end.getTime() - 1))).toBe(period.start.getTime());
        }
      }),
    );
  });

  it("gives no period for a gauge", () => {
    expect(periodContaining("never", new Date("2026-07-04T00:00:00Z"))).toBeNull();
    expect(usageRowStart("never", new Date("2026-07-04T00:00:00Z"))).toEqual(GAUGE_PERIOD_START);
  });
});

describe("billingPeriodContaining", () => {
  const at = (iso: string) => new Date(iso);

  it("anchors monthly periods on the start, on the last day of months too short for it", () => {
    const started = at("2026-01-31T10:00:00Z");
    expect(billingPeriodContaining(started, "month", at("2026-02-15T00:00:00Z"))).toEqual({ start: started, end: at("2026-02-28T10:00:00Z") });
    expect(billingPeriodContaining(started, "month", at("2026-02-28T10:00:00Z"))).toEqual({ start: at("2026-02-28T10:00:00Z"), end: at("2026-03-31T10:00:00Z") });
    // Back to the 31st in a month that has one: the anchor, not the last renewal, decides.
    expect(billingPeriodContaining(started, "month", at("2026-04-15T00:00:00Z"))).toEqual({ start: at("2026-03-31T10:00:00Z"), end: at("2026-04-30T10:00:00Z") });
    expect(billingPeriodContaining(started, "month", at("2028-02-29T10:00:00Z")).start).toEqual(at("2028-02-29T10:00:00Z"));
  });

  it("anchors yearly periods, 29 February renewing on the 28th in other years", () => {
    const started = at("2028-02-29T00:00:00Z");
    expect(billingPeriodContaining(started, "year", at("2028-12-31T00:00:00Z"))).toEqual({ start: started, end: at("2029-02-28T00:00:00Z") });
    expect(billingPeriodContaining(started, "year", at("2032-03-01T00:00:00Z"))).toEqual({ start: at("2032-02-29T00:00:00Z"), end: at("2033-02-28T00:00:00Z") });
  });

  it("contains its instant and tiles time from the start, for any start", () => {
    fc.assert(
      fc.property(instant, fc.integer({ min: 0, max: 4_000 * 86_400_000 }), fc.constantFrom("month" as const, "year" as const), (started, later, interval) => {
        const moment = new Date(started.getTime() + later);
        const period = billingPeriodContaining(started, interval, moment);
        expect(period.start.getTime()).toBeLessThanOrEqual(moment.getTime());
        expect(moment.getTime()).toBeLessThan(period.end.getTime());
        expect(billingPeriodContaining(started, interval, period.end).start).toEqual(period.end);
      }),
    );
  });
});
