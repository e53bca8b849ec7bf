import { describe, expect, it } from "vitest";
import { fits, MAX_USAGE, quotaOf } from "../../src/domain/quota.ts";
import { featureEntitlement, futureExpiry, grantRemaining, NO_TERMS, quotaEntitlement, type AccountTerms } from "../../src/domain/terms.ts";
import { InvalidArgumentError } from "../../src/domain/errors.ts";
import { defaultMetrics, defaultPlans } from "../support/catalog.ts";

const [free] = defaultPlans;
const jobs = defaultMetrics.find((metric) => metric.code === "jobs")!;
const at = new Date("2026-06-10T08:00:00Z");
const later = new Date("2026-06-20T00:00:00Z");

const terms: AccountTerms = {
  overrides: [
    { kind: "feature", target: "sso", enabled: true, expiresAt: later },
    { kind: "feature", target: "api_access", enabled: false, expiresAt: null },
    { kind: "quota", target: "jobs", limit: 2000n, expiresAt: later },
    { kind: "quota", target: "api_calls", limit: null, expiresAt: null },
  ],
  grants: [
    { id: "a", metric: "jobs", remaining: 5n, expiresAt: null },
    { id: "b", metric: "jobs", remaining: 3n, expiresAt: later },
    { id: "c", metric: "api_calls", remaining: 7n, expiresAt: null },
  ],
};

describe("featureEntitlement", () => {
  it("takes an override in force over the plan, either way, and the plan once it expires", () => {
    expect(featureEntitlement(free!, terms, "sso", at)).toEqual({ enabled: true, source: "override" });
    expect(featureEntitlement(free!, terms, "api_access", at)).toEqual({ enabled: false, source: "override" });
    expect(featureEntitlement(free!, terms, "sso", later)).toEqual({ enabled: false, source: "plan" });
    expect(featureEntitlement(free!, NO_TERMS, "api_access", at)).toEqual({ enabled: true, source: "plan" });
  });
});

describe("quotaEntitlement", () => {
  it("takes an override's limit (null: unlimited) until it expires", () => {
    expect(quotaEntitlement(free!, terms, "jobs", at)).toEqual({ limit: 2000n, source: "override" });
    expect(quotaEntitlement(free!, terms, "api_calls", at)).toEqual({ limit: null, source: "override" });
    expect(quotaEntitlement(free!, terms, "jobs", later)).toEqual({ limit: 10n, source: "plan" });
  });
});

describe("grantRemaining", () => {
  it("sums the grants of the metric still in force", () => {
    expect(grantRemaining(terms, "jobs", at)).toBe(8n);
    expect(grantRemaining(terms, "jobs", later)).toBe(5n);
    expect(grantRemaining(terms, "storage_mb", at)).toBe(0n);
  });
});

describe("quotaOf", () => {
  it("adds grants to what is left of the allowance, and never for an unlimited limit", () => {
    expect(quotaOf(jobs, { plan: free!, terms, subscription: undefined }, 1990n, at)).toMatchObject({ limit: 2000n, remaining: 18n, grantRemaining: 8n, limitSource: "override" });
    expect(quotaOf(jobs, { plan: free!, terms, subscription: undefined }, 12n, later)).toMatchObject({ limit: 10n, remaining: 5n, grantRemaining: 5n, limitSource: "plan" });
    const apiCalls = defaultMetrics.find((metric) => metric.code === "api_calls")!;
    expect(quotaOf(apiCalls, { plan: free!, terms, subscription: undefined }, 12n, at)).toMatchObject({ limit: null, remaining: null, grantRemaining: 0n });
  });
});

describe("fits, with grants", () => {
  it("covers with grants what the allowance cannot, under a limit only", () => {
    expect(fits(8n, 5n, 10n, 3n)).toBe(true);
    expect(fits(8n, 6n, 10n, 3n)).toBe(false);
    expect(fits(15n, 3n, 10n, 3n)).toBe(true);
    expect(fits(15n, 4n, 10n, 3n)).toBe(false);
    expect(fits(MAX_USAGE, 1n, null, 100n)).toBe(false);
  });
});

describe("futureExpiry", () => {
  it("takes an instant ahead, before the year 10000, and nothing else", () => {
    expect(futureExpiry(undefined, at)).toBeNull();
    expect(futureExpiry(later, at)).toEqual(later);
    expect(() => futureExpiry(at, at)).toThrow(InvalidArgumentError);
    expect(() => futureExpiry(new Date("+010000-01-01T00:00:00Z"), at)).toThrow(InvalidArgumentError);
    expect(() => futureExpiry(new Date(Number.NaN), at)).toThrow(InvalidArgumentError);
  });
});
