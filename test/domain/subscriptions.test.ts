import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../src/domain/errors.ts";
import { expiryOf, MAX_DURATION_DAYS, subscriptionHistory, subscriptionInForce, subscriptionStatus } from "../../src/domain/subscriptions.ts";

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

describe("subscriptionInForce", () => {
  const at = new Date("2026-05-10T00:00:00Z");
  const subscription = { userId: "u", planCode: "pro", planVersion: 2, startedAt: new Date("2026-01-01T00:00:00Z"), expiresAt: null, endedAt: null };
  const trial = { userId: "u", planCode: "enterprise", planVersion: 1, startedAt: new Date("2026-05-01T00:00:00Z"), endsAt: new Date("2026-05-15T00:00:00Z") };
  const versionOf = (code: string) => (code === "free" ? undefined : 7);

  it("is the subscription while active, else none", () => {
    expect(subscriptionInForce("u", { subscription, trial: null, scheduledChange: null }, at, versionOf)).toBe(subscription);
    const lapsed = { ...subscription, expiresAt: at };
    expect(subscriptionInForce("u", { subscription: lapsed, trial: null, scheduledChange: null }, at, versionOf)).toBeNull();
  });

  it("is a running trial over the subscription, which comes back when the trial ends", () => {
    expect(subscriptionInForce("u", { subscription, trial, scheduledChange: null }, at, versionOf)).toMatchObject({ planCode: "enterprise", trialEndsAt: trial.endsAt });
    expect(subscriptionInForce("u", { subscription, trial, scheduledChange: null }, trial.endsAt, versionOf)).toBe(subscription);
  });

  it("is a scheduled change from the instant it comes due, over a trial; to the default plan, none", () => {
    const change = { planCode: "team", effectiveAt: at };
    expect(subscriptionInForce("u", { subscription, trial, scheduledChange: change }, new Date(at.getTime() - 1), versionOf)?.planCode).toBe("enterprise");
    expect(subscriptionInForce("u", { subscription, trial, scheduledChange: change }, at, versionOf)).toEqual({
      userId: "u",
      planCode: "team",
      planVersion: 7,
      startedAt: at,
      expiresAt: null,
      endedAt: null,
    });
    expect(subscriptionInForce("u", { subscription, trial, scheduledChange: { planCode: "free", effectiveAt: at } }, at, versionOf)).toBeNull();
  });

  it("says trialing while a trial runs, and expired after", () => {
    const trialing = { ...subscription, trialEndsAt: trial.endsAt };
    expect(subscriptionStatus(trialing, at)).toBe("trialing");
    expect(subscriptionStatus(trialing, trial.endsAt)).toBe("expired");
  });
});

describe("subscriptionHistory", () => {
  const at = (day: string) => new Date(`2026-03-${day}T00:00:00Z`);
  const subscription = (planCode: string, day: string) => ({ userId: "u", planCode, planVersion: 1, startedAt: at(day), expiresAt: null, endedAt: null });
  const trial = (planCode: string, day: string, endsDay: string) => ({ userId: "u", planCode, planVersion: 2, startedAt: at(day), endsAt: at(endsDay) });

  it("puts trials among the subscriptions, newest first, each as the subscription it gave", () => {
    const history = subscriptionHistory(
      [subscription("enterprise", "20"), subscription("pro", "01")],
      [{ trial: trial("team", "25", "30"), endedAt: null }, { trial: trial("enterprise", "10", "17"), endedAt: at("12") }],
    );
    expect(history.map((entry) => [entry.planCode, entry.startedAt.getUTCDate(), entry.trialEndsAt?.getUTCDate(), entry.endedAt?.getUTCDate()])).toEqual([
      ["team", 25, 30, undefined],
      ["enterprise", 20, undefined, undefined],
      ["enterprise", 10, 17, 12],
      ["pro", 1, undefined, undefined],
    ]);
    // A trial cut short is replaced; one that ran its course has expired; one running is trialing.
    expect(history.map((entry) => subscriptionStatus(entry, at("31")))).toEqual(["expired", "active", "replaced", "active"]);
    expect(subscriptionStatus(history[0]!, at("26"))).toBe("trialing");
  });

  it("keeps the order of subscriptions that started together", () => {
    const history = subscriptionHistory([subscription("team", "05"), subscription("pro", "05")], []);
    expect(history.map((entry) => entry.planCode)).toEqual(["team", "pro"]);
  });
});

