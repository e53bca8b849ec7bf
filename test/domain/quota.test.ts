import { describe, expect, it } from "vitest";
import type { Metric } from "../../src/domain/catalog.ts";
import { InvalidArgumentError } from "../../src/domain/errors.ts";
import { checkAmount, fits, incrementAmount, MAX_USAGE, quotaState, usageCeiling } from "../../src/domain/quota.ts";

const jobs: Metric = { code: "jobs", resetPeriod: "month", description: "" };
const storage: Metric = { code: "storage_mb", resetPeriod: "never", description: "" };
const at = new Date("2026-03-15T12:00:00Z");

describe("fits", () => {
  it("allows up to the limit exactly", () => {
    expect(fits(9n, 1n, 10n)).toBe(true);
    expect(fits(10n, 1n, 10n)).toBe(false);
    expect(fits(0n, 11n, 10n)).toBe(false);
  });

  it("treats null as unlimited, up to the safe maximum", () => {
    expect(fits(10n ** 12n, 10n ** 12n, null)).toBe(true);
    expect(fits(MAX_USAGE, 1n, null)).toBe(false);
  });

  it("always lets a gauge go down, even above its limit", () => {
    expect(fits(8192n, -100n, 100n)).toBe(true);
    expect(fits(8192n, 1n, 100n)).toBe(false);
  });

  it("allows nothing on a zero limit", () => {
    expect(fits(0n, 1n, 0n)).toBe(false);
  });
});

describe("usageCeiling", () => {
  it("caps unlimited and huge limits at MAX_USAGE", () => {
    expect(usageCeiling(null)).toBe(MAX_USAGE);
    expect(usageCeiling(2n ** 62n)).toBe(MAX_USAGE);
    expect(usageCeiling(10n)).toBe(10n);
  });
});

describe("quotaState", () => {
  it("reports remaining, never below zero", () => {
    expect(quotaState(jobs, 10n, 3n, at).remaining).toBe(7n);
    expect(quotaState(storage, 100n, 8192n, at).remaining).toBe(0n);
    expect(quotaState(jobs, null, 3n, at).remaining).toBeNull();
  });

  it("carries the period for counters and none for gauges", () => {
    expect(quotaState(jobs, 10n, 0n, at).period?.end).toEqual(new Date("2026-04-01T00:00:00Z"));
    expect(quotaState(storage, 10n, 0n, at).period).toBeNull();
  });
});

describe("amounts", () => {
  it("refuses zero and negative counter increments", () => {
    expect(() => incrementAmount(jobs, 0n)).toThrow(InvalidArgumentError);
    expect(() => incrementAmount(jobs, -1n)).toThrow(/counter/);
  });

  it("takes negative gauge amounts", () => {
    expect(incrementAmount(storage, -50n)).toBe(-50n);
  });

  it("refuses amounts beyond the safe maximum", () => {
    expect(() => incrementAmount(jobs, MAX_USAGE + 1n)).toThrow(InvalidArgumentError);
    expect(() => incrementAmount(storage, -MAX_USAGE - 1n)).toThrow(InvalidArgumentError);
    expect(incrementAmount(jobs, MAX_USAGE)).toBe(MAX_USAGE);
  });

  it("reads a zero check amount as one", () => {
    expect(checkAmount(jobs, 0n)).toBe(1n);
    expect(checkAmount(jobs, 5n)).toBe(5n);
    expect(() => checkAmount(jobs, -1n)).toThrow(InvalidArgumentError);
  });
});
