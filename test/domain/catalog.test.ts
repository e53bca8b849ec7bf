import { describe, expect, it } from "vitest";
import { Catalog, quotaLimit, sameTerms, type Plan } from "../../src/domain/catalog.ts";
import { defaultMetrics, defaultPlans } from "../support/catalog.ts";

describe("Catalog", () => {
  const catalog = new Catalog([...defaultPlans].reverse(), defaultMetrics);

  it("orders plans by price", () => {
    expect(catalog.plans.map((plan) => plan.code)).toEqual(["free", "pro", "enterprise"]);
  });

  it("requires a free plan", () => {
    expect(() => new Catalog(defaultPlans.filter((plan) => plan.code !== "free"), defaultMetrics)).toThrow(/free/);
  });

  it("grants nothing on a metric a plan does not list", () => {
    const free = catalog.defaultPlan;
    expect(quotaLimit(free, "jobs")).toBe(10n);
    expect(quotaLimit(free, "compute_minutes")).toBeNull();
    expect(quotaLimit({ ...free, quotas: [] }, "jobs")).toBe(0n);
  });
});

describe("the default catalog", () => {
  it("matches the system we replace", () => {
    const byCode = Object.fromEntries(defaultPlans.map((plan) => [plan.code, plan]));
    const limits = (code: string) =>
      Object.fromEntries(byCode[code]!.quotas.map((quota) => [quota.metric, quota.limit]));
    expect(byCode.free).toMatchObject({ priceCents: 0n, rateLimitMultiplier: 1 });
    expect(byCode.pro).toMatchObject({ priceCents: 1999n, rateLimitMultiplier: 5 });
    expect(byCode.enterprise).toMatchObject({ priceCents: 9999n, rateLimitMultiplier: 10 });
    expect(limits("free")).toEqual({ api_calls: 100n, compute_minutes: null, jobs: 10n, storage_mb: 100n });
    expect(limits("pro")).toEqual({ api_calls: 10_000n, compute_minutes: null, jobs: 500n, storage_mb: 10_240n });
    expect(limits("enterprise")).toEqual({ api_calls: null, compute_minutes: null, jobs: null, storage_mb: null });
    for (const plan of defaultPlans) {
      expect(plan.features.api_access).toBe(true);
    }
    expect(byCode.free!.features.priority_support).toBe(false);
    expect(byCode.pro!.features.priority_support).toBe(true);
    expect(byCode.enterprise!.features.priority_support).toBe(true);
  });
});

describe("plan versions", () => {
  const [free, pro] = defaultPlans as [(typeof defaultPlans)[number], (typeof defaultPlans)[number]];
  const pro2 = { ...pro, version: 2, priceCents: 2499n };
  const free2 = { ...free, version: 2, displayName: "Free forever" };

  it("list each plan at its latest version, and find every version", () => {
    const catalog = new Catalog([pro2, ...defaultPlans, free2], defaultMetrics);
    expect(catalog.plans.map((plan) => `${plan.code}@${plan.version}`)).toEqual(["free@2", "pro@2", "enterprise@1"]);
    expect(catalog.defaultPlan).toBe(free2);
    expect(catalog.plan("pro")).toBe(pro2);
    expect(catalog.planVersion("pro", 1)).toBe(pro);
    expect(catalog.planVersion("pro", 3)).toBeUndefined();
    expect(catalog.planVersion("nope", 1)).toBeUndefined();
  });

  it("differ in terms when anything a subscriber gets differs, not when an unused feature is added", () => {
    const republished: Plan = { ...pro, version: 7 };
    expect(sameTerms(pro, republished)).toBe(true);
    expect(sameTerms(pro, { ...pro, features: { ...pro.features, beta_access: false } })).toBe(true);
    expect(sameTerms(pro, { ...pro, features: { ...pro.features, sso: true } })).toBe(false);
    expect(sameTerms(pro, pro2)).toBe(false);
    expect(sameTerms(pro, { ...pro, visibility: "hidden" })).toBe(false);
    expect(sameTerms(pro, { ...pro, quotas: pro.quotas.map((quota) => (quota.metric === "jobs" ? { ...quota, limit: null } : quota)) })).toBe(false);
  });
});
