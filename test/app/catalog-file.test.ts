import { describe, expect, it } from "vitest";
import { catalogYaml, formatProblem, InvalidCatalogError, loadCatalogFile, loadDefaultCatalog, parseCatalog } from "../../src/app/catalog-file.ts";
import { plansOf } from "../../src/domain/catalog.ts";

const VALID = `
default_plan: free
metrics:
  jobs:       { reset: month, description: Jobs run per UTC month }
  storage_mb: { reset: never, description: "Storage in use, in MB" }
features:
  api_access: { description: Call the public API }
  sso:        { description: Single sign-on }
plans:
  free:
    display_name: Free
    price_cents: 0
    currency: USD
    interval: month
    rate_limit_multiplier: 1
    quotas: { jobs: 10 }
  pro:
    display_name: Pro
    price_cents: 1999
    currency: USD
    interval: year
    rate_limit_multiplier: 5
    visibility: hidden
    trial_days: 14
    features: [api_access]
    quotas: { jobs: 500, storage_mb: unlimited }
`;

/** The problems parseCatalog reports for `text`, as the CLI prints them. */
function problemsOf(text: string, format: "yaml" | "json" = "yaml"): string[] {
  try {
    parseCatalog(text, { source: "test.yaml", format });
  } catch (error) {
    if (error instanceof InvalidCatalogError) return error.problems.map(formatProblem);
    throw error;
  }
  return [];
}

describe("a catalog file", () => {
  it("declares metrics, features and plans, with defaults for what a plan leaves out", () => {
    const catalog = parseCatalog(VALID, { source: "test.yaml", format: "yaml" });
    expect(catalog.defaultPlan).toBe("free");
    expect(catalog.metrics).toEqual([
      { code: "jobs", resetPeriod: "month", description: "Jobs run per UTC month" },
      { code: "storage_mb", resetPeriod: "never", description: "Storage in use, in MB" },
    ]);
    const [free, pro] = catalog.plans;
    expect(free).toMatchObject({ code: "free", priceCents: 0n, visibility: "public", trialDays: null, features: [], quotas: [{ metric: "jobs", limit: 10n }] });
    expect(pro).toMatchObject({ interval: "year", visibility: "hidden", trialDays: 14, features: ["api_access"] });
    expect(pro?.quotas).toEqual([{ metric: "jobs", limit: 500n }, { metric: "storage_mb", limit: null }]);
    // As the service holds it: every feature on or off, a metric not listed absent (limit 0).
    const [heldFree] = plansOf(catalog);
    expect(heldFree?.features).toEqual({ api_access: false, sso: false });
    expect(heldFree?.quotas).toEqual([{ metric: "jobs", limit: 10n, resetPeriod: "month" }]);
  });

  it("is accepted as JSON of the same shape", () => {
    const json = JSON.stringify({
      default_plan: "free",
      metrics: { jobs: { reset: "day", description: "Jobs" } },
      plans: { free: { display_name: "Free", price_cents: 0, currency: "EUR", interval: "month", rate_limit_multiplier: 1, quotas: { jobs: "unlimited" } } },
    });
    expect(parseCatalog(json, { source: "test.json", format: "json" }).plans[0]?.quotas).toEqual([{ metric: "jobs", limit: null }]);
  });

  it("names what refers to nothing, by its path", () => {
    const text = VALID.replace("quotas: { jobs: 500, storage_mb: unlimited }", "quotas: { jbos: 500 }")
      .replace("features: [api_access]", "features: [api_access, sos, api_access]")
      .replace("default_plan: free", "default_plan: basic");
    expect(problemsOf(text)).toEqual([
      'default_plan: unknown plan "basic"',
      'plans.pro.features[1]: unknown feature "sos"',
      'plans.pro.features[2]: "api_access" is listed twice',
      'plans.pro.quotas.jbos: unknown metric "jbos"',
    ]);
  });

  it("reports every problem of shape at once, each with its path", () => {
    const text = VALID.replace("reset: month", "reset: fortnight")
      .replace("price_cents: 1999", "price_cents: -5")
      .replace("currency: USD\n    interval: year", "currency: dollars\n    interval: year")
      .replace("jobs: 10 }", "jobs: lots }")
      .replace("  sso:", "  Bad-Code:")
      .replace("    trial_days: 14", "    trial_days: 14\n    colour: blue");
    const problems = problemsOf(text);
    expect(problems).toEqual(
      expect.arrayContaining([
        'metrics.jobs.reset: must be one of "day", "week", "month", "year", "never"',
        "plans.pro.price_cents: must not be negative",
        "plans.pro.currency: must be a three-letter ISO 4217 code such as USD",
        'plans.free.quotas.jobs: must be a whole number or "unlimited"',
        "features.Bad-Code: not a valid code: must match ^[a-z][a-z0-9_]{0,63}$",
        "plans.pro.colour: unknown key",
      ]),
    );
    expect(problems).toHaveLength(6);
  });

  it("lets monthly and yearly metrics follow the subscription, and nothing else", () => {
    const anchored = VALID.replace("jobs:       { reset: month,", "jobs:       { reset: month, reset_anchor: subscription,");
    const catalog = parseCatalog(anchored, { source: "test.yaml", format: "yaml" });
    expect(catalog.metrics.find((metric) => metric.code === "jobs")?.resetAnchor).toBe("subscription");
    expect(parseCatalog(catalogYaml(catalog), { source: "export.yaml", format: "yaml" })).toEqual(catalog);
    expect(problemsOf(VALID.replace("storage_mb: { reset: never,", "storage_mb: { reset: never, reset_anchor: subscription,"))).toEqual([
      'metrics.storage_mb.reset_anchor: only a "month" or "year" reset can follow the subscription',
    ]);
    expect(problemsOf(anchored.replace("reset_anchor: subscription", "reset_anchor: billing"))).toEqual([
      'metrics.jobs.reset_anchor: must be "calendar" or "subscription"',
    ]);
  });

  it("takes a metric's alert thresholds in any order, and refuses ones that are not whole percentages or repeat", () => {
    const alerting = VALID.replace("jobs:       { reset: month,", "jobs:       { reset: month, alert_thresholds: [100, 50, 80],");
    const catalog = parseCatalog(alerting, { source: "test.yaml", format: "yaml" });
    expect(catalog.metrics.find((metric) => metric.code === "jobs")?.alertThresholds).toEqual([50, 80, 100]);
    expect(parseCatalog(catalogYaml(catalog), { source: "export.yaml", format: "yaml" })).toEqual(catalog);
    expect(problemsOf(alerting.replace("[100, 50, 80]", "[0, 80, 150, 2.5]"))).toEqual([
      "metrics.jobs.alert_thresholds[0]: must be from 1 to 100",
      "metrics.jobs.alert_thresholds[2]: must be from 1 to 100",
      "metrics.jobs.alert_thresholds[3]: must be whole percentages",
    ]);
    expect(problemsOf(alerting.replace("[100, 50, 80]", "[80, 80]"))).toEqual(["metrics.jobs.alert_thresholds: must not repeat a percentage"]);
  });

  it("names a file that cannot be read", async () => {
    await expect(loadCatalogFile("/nonexistent/catalog.yaml")).rejects.toMatchObject({ problems: [{ path: "", message: "cannot read /nonexistent/catalog.yaml (ENOENT)" }] });
  });

  it("refuses text that is not YAML, or has a key twice", () => {
    expect(problemsOf("plans: [unclosed")).toEqual([expect.stringMatching(/^not YAML: /)]);
    expect(problemsOf(`${VALID}\ndefault_plan: pro\n`)).toEqual([expect.stringMatching(/^not YAML: .*unique/i)]);
    expect(problemsOf("{", "json")).toEqual([expect.stringMatching(/^not JSON: /)]);
    expect(problemsOf("")).toEqual(["default_plan: is required", "metrics: is required", "plans: is required"]);
    // Inside { }, a comma ends a value: unquoted, "in MB" would be a key of its own.
    expect(problemsOf(VALID.replace('"Storage in use, in MB"', "Storage in use, in MB"))).toEqual(["metrics.storage_mb.in MB: unknown key"]);
  });
});

describe("the default catalog (catalog/default.yaml)", () => {
  it("is today's three plans and four metrics", async () => {
    const catalog = await loadDefaultCatalog();
    expect(catalog.defaultPlan).toBe("free");
    expect(catalog.metrics.map((metric) => `${metric.code}/${metric.resetPeriod}`)).toEqual(["api_calls/day", "compute_minutes/month", "jobs/month", "storage_mb/never"]);
    const summary = Object.fromEntries(
      plansOf(catalog).map((plan) => [
        plan.code,
        {
          price: `${plan.currency} ${plan.priceCents}`,
          multiplier: plan.rateLimitMultiplier,
          features: Object.keys(plan.features).filter((feature) => plan.features[feature]),
          limits: Object.fromEntries(plan.quotas.map((quota) => [quota.metric, quota.limit])),
        },
      ]),
    );
    expect(summary).toEqual({
      free: { price: "USD 0", multiplier: 1, features: ["api_access"], limits: { api_calls: 100n, compute_minutes: null, jobs: 10n, storage_mb: 100n } },
      pro: {
        price: "USD 1999",
        multiplier: 5,
        features: ["api_access", "priority_support", "webhooks", "advanced_analytics"],
        limits: { api_calls: 10_000n, compute_minutes: null, jobs: 500n, storage_mb: 10_240n },
      },
      enterprise: {
        price: "USD 9999",
        multiplier: 10,
        features: ["api_access", "priority_support", "webhooks", "advanced_analytics", "custom_domains", "sso", "audit_log"],
        limits: { api_calls: null, compute_minutes: null, jobs: null, storage_mb: null },
      },
    });
  });
});
