import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/domain/errors.ts";
import { expiryOf, MAX_DURATION_DAYS, subscriptionStatus } from "../../src/domain/subscriptions.ts";

const startedAt = new Date("2026-03-01T00:00:00Z");

describe("subscriptionStatus", () => {
  const subscription = { userId: "u", planCode: "pro", planVersion: 1, startedAt, expiresAt: new Date("2026-03-31T00:00:00Z"), endedAt: null };

  it("is active until the instant it expires", () => {
    expect(subscriptionStatus(subscription, new Date("2026-03-30T23:59:59.999Z"))).toBe("active");
    expect(subscriptionStatus(subscription, new Date("2026-03-31T00:00:00Z"))).toBe("expired");
  });

  it("never expires without an end", () => {
    expect(subscriptionStatus({ ...subscription, expiresAt: null }, new Date("2126-01-01T00:00:00Z"))).toBe("active");
  });

  it("is replaced once ended, whatever its expiry", () => {
    expect(subscriptionStatus({ ...subscription, endedAt: new Date("2026-03-10T00:00:00Z") }, new Date("2026-03-11T00:00:00Z"))).toBe("replaced");
  });
});

describe("expiryOf", () => {
  it("adds whole days, or none", () => {
    expect(expiryOf(startedAt, 30)).toEqual(new Date("2026-03-31T00:00:00Z"));
    expect(expiryOf(startedAt, undefined)).toBeNull();
  });

  it("refuses durations out of range", () => {
    for (const days of [0, -1, MAX_DURATION_DAYS + 1]) {
      expect(() => expiryOf(startedAt, days)).toThrow(InvalidArgumentError);
    }
    expect(expiryOf(startedAt, MAX_DURATION_DAYS)).not.toBeNull();
  });
});
