import { describe, expect, it } from "vitest";
import { GAUGE_PERIOD_START, periodContaining, usageRowStart } from "../../src/domain/periods.ts";

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

  it("gives no period for a gauge", () => {
    expect(periodContaining("never", new Date("2026-07-04T00:00:00Z"))).toBeNull();
    expect(usageRowStart("never", new Date("2026-07-04T00:00:00Z"))).toEqual(GAUGE_PERIOD_START);
  });
});
