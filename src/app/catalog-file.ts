import { readFile } from "node:fs/promises";
import { parseDocument, stringify } from "yaml";
import { z } from "zod";
import { RESET_PERIODS, type CatalogDefinition } from "../domain/catalog.ts";
import { packagePath } from "../platform/package-files.ts";

/** One thing wrong with a catalog file: where (`plans.pro.quotas.jbos`) and what. */
export type CatalogProblem = { readonly path: string; readonly message: string };

/** A catalog file that does not validate, with every problem found. */
export class InvalidCatalogError extends Error {
  override name = "InvalidCatalogError";
  readonly problems: readonly CatalogProblem[];

  constructor(source: string, problems: readonly CatalogProblem[]) {
    super(`${source} is not a valid catalog:\n${problems.map(formatProblem).join("\n")}`);
    this.problems = problems;
  }
}

/** `plans.pro.quotas.jbos: unknown metric "jbos"`, as the CLI prints it. */
export function formatProblem(problem: CatalogProblem): string {
  return problem.path === "" ? problem.message : `${problem.path}: ${problem.message}`;
}

const CODE = /^[a-z][a-z0-9_]{0,63}$/;
const code = z.string().regex(CODE, `must match ${CODE.source}`);
const description = z.string().min(1, "must not be empty").max(500, "must be at most 500 characters");
const wholeNumber = z.number().int("must be a whole number").nonnegative("must not be negative").max(Number.MAX_SAFE_INTEGER);

const metricSchema = z
  .strictObject({
    reset: z.enum(RESET_PERIODS, { error: `must be one of ${RESET_PERIODS.map((period) => `"${period}"`).join(", ")}` }),
    reset_anchor: z.enum(["calendar", "subscription"], { error: 'must be "calendar" or "subscription"' }).default("calendar"),
    description,
    alert_thresholds: z
      .array(z.number().int("must be whole percentages").min(1, "must be from 1 to 100").max(100, "must be from 1 to 100"))
      .max(10, "must be at most 10")
      .refine((thresholds) => new Set(thresholds).size === thresholds.length, "must not repeat a percentage")
      .optional(),
  })
  .refine((metric) => metric.reset_anchor === "calendar" || metric.reset === "month" || metric.reset === "year", {
    path: ["reset_anchor"],
    message: 'only a "month" or "year" reset can follow the subscription',
  });

const planSchema = z.strictObject({
  display_name: z.string().min(1, "must not be empty").max(100, "must be at most 100 characters"),
  price_cents: wholeNumber,
  currency: z.string().regex(/^[A-Z]{3}$/, "must be a three-letter ISO 4217 code such as USD"),
  interval: z.enum(["month", "year"], { error: 'must be "month" or "year"' }),
  rate_limit_multiplier: z.number().positive("must be more than 0").max(1000, "must be at most 1000"),
  visibility: z.enum(["public", "hidden"], { error: 'must be "public" or "hidden"' }).default("public"),
  trial_days: z.number().int("must be a whole number").min(1, "must be at least 1").max(365, "must be at most 365").optional(),
  features: z.array(code).default([]),
  quotas: z.record(z.string(), z.union([wholeNumber, z.literal("unlimited")], { error: 'must be a whole number or "unlimited"' })).default({}),
});

const catalogSchema = z.strictObject({
  default_plan: code,
  metrics: z.record(code, metricSchema),
  features: z.record(code, z.strictObject({ description })).default({}),
  plans: z.record(code, planSchema),
});

type CatalogDocument = z.infer<typeof catalogSchema>;

/** `["plans", "pro", "features", 1]` → `plans.pro.features[1]`. */
function pathOf(segments: readonly PropertyKey[]): string {
  return segments.reduce<string>(
    (path, segment) => (typeof segment === "number" ? `${path}[${segment}]` : path === "" ? String(segment) : `${path}.${String(segment)}`),
    "",
  );
}

/** A schema issue as the file's author reads it: at the key it is about, in plain words. */
function problemsOfIssue(issue: z.core.$ZodIssue): CatalogProblem[] {
  const path = pathOf(issue.path);
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({ path: pathOf([...issue.path, key]), message: "unknown key" }));
  }
  if (issue.code === "invalid_key") return [{ path, message: `not a valid code: must match ${CODE.source}` }];
  if (issue.code === "invalid_type" && issue.message.endsWith("received undefined")) return [{ path, message: "is required" }];
  return [{ path, message: issue.message }];
}

/** What the shape alone cannot tell: names that refer to nothing, duplicates. */
function crossReferenceProblems(document: CatalogDocument): CatalogProblem[] {
  const problems: CatalogProblem[] = [];
  if (!Object.hasOwn(document.plans, document.default_plan)) {
    problems.push({ path: "default_plan", message: `unknown plan "${document.default_plan}"` });
  }
  for (const [planCode, plan] of Object.entries(document.plans)) {
    const seen = new Set<string>();
    plan.features.forEach((feature, index) => {
      const path = `plans.${planCode}.features[${index}]`;
      if (!Object.hasOwn(document.features, feature)) problems.push({ path, message: `unknown feature "${feature}"` });
      else if (seen.has(feature)) problems.push({ path, message: `"${feature}" is listed twice` });
      seen.add(feature);
    });
    for (const metric of Object.keys(plan.quotas)) {
      if (!Object.hasOwn(document.metrics, metric)) {
        problems.push({ path: `plans.${planCode}.quotas.${metric}`, message: `unknown metric "${metric}"` });
      }
    }
  }
  return problems;
}

function toDefinition(document: CatalogDocument): CatalogDefinition {
  return {
    defaultPlan: document.default_plan,
    metrics: Object.entries(document.metrics).map(([metricCode, metric]) => ({
      code: metricCode,
      resetPeriod: metric.reset,
      description: metric.description,
      ...(metric.reset_anchor === "subscription" ? { resetAnchor: "subscription" as const } : {}),
      ...(metric.alert_thresholds === undefined || metric.alert_thresholds.length === 0 ? {} : { alertThresholds: [...metric.alert_thresholds].sort((a, b) => a - b) }),
    })),
    features: Object.entries(document.features).map(([featureCode, feature]) => ({ code: featureCode, description: feature.description })),
    plans: Object.entries(document.plans).map(([planCode, plan]) => ({
      code: planCode,
      displayName: plan.display_name,
      priceCents: BigInt(plan.price_cents),
      currency: plan.currency,
      interval: plan.interval,
      rateLimitMultiplier: plan.rate_limit_multiplier,
      visibility: plan.visibility,
      trialDays: plan.trial_days ?? null,
      features: plan.features,
      quotas: Object.entries(plan.quotas).map(([metric, limit]) => ({ metric, limit: limit === "unlimited" ? null : BigInt(limit) })),
    })),
  };
}

/** A catalog as the text of a file of the documented shape (docs/catalog.md): what `catalog export` prints. */
export function catalogYaml(catalog: CatalogDefinition): string {
  const document = {
    default_plan: catalog.defaultPlan,
    metrics: Object.fromEntries(
      catalog.metrics.map((metric) => [
        metric.code,
        {
          reset: metric.resetPeriod,
          ...(metric.resetAnchor === "subscription" ? { reset_anchor: "subscription" } : {}),
          description: metric.description,
          ...(metric.alertThresholds === undefined ? {} : { alert_thresholds: [...metric.alertThresholds] }),
        },
      ]),
    ),
    features: Object.fromEntries(catalog.features.map((feature) => [feature.code, { description: feature.description }])),
    plans: Object.fromEntries(
      catalog.plans.map((plan) => [
        plan.code,
        {
          display_name: plan.displayName,
          price_cents: Number(plan.priceCents),
          currency: plan.currency,
          interval: plan.interval,
          rate_limit_multiplier: plan.rateLimitMultiplier,
          visibility: plan.visibility,
          ...(plan.trialDays === null ? {} : { trial_days: plan.trialDays }),
          features: plan.features,
          quotas: Object.fromEntries(plan.quotas.map((quota) => [quota.metric, quota.limit === null ? "unlimited" : Number(quota.limit)])),
        },
      ]),
    ),
  };
  return stringify(document);
}

/** Parses YAML text (or JSON, when `format` says so) into a document, or the syntax problems. */
function parseText(text: string, format: "yaml" | "json"): { document: unknown } | { problems: CatalogProblem[] } {
  if (format === "json") {
    try {
      return { document: JSON.parse(text) as unknown };
    } catch (error) {
      return { problems: [{ path: "", message: `not JSON: ${(error as Error).message}` }] };
    }
  }
  // Duplicate keys are errors, as YAML 1.2 has them.
  const parsed = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (parsed.errors.length > 0) {
    return { problems: parsed.errors.map((error) => ({ path: "", message: `not YAML: ${error.message.split("\n")[0]}` })) };
  }
  return { document: parsed.toJS() as unknown };
}

/** The catalog a file's text declares, or every problem with it (InvalidCatalogError). */
export function parseCatalog(text: string, options: { source: string; format: "yaml" | "json" }): CatalogDefinition {
  const parsed = parseText(text, options.format);
  if ("problems" in parsed) throw new InvalidCatalogError(options.source, parsed.problems);
  return catalogOfDocument(parsed.document ?? {}, options.source);
}

/**
 * The catalog a document of the file's shape declares (parsed YAML or JSON, or an ApplyCatalog
 * request made into one), or every problem with it, at the paths a file's author reads.
 */
export function catalogOfDocument(document: unknown, source: string): CatalogDefinition {
  const result = catalogSchema.safeParse(document);
  if (!result.success) throw new InvalidCatalogError(source, result.error.issues.flatMap(problemsOfIssue));
  const problems = crossReferenceProblems(result.data);
  if (problems.length > 0) throw new InvalidCatalogError(source, problems);
  return toDefinition(result.data);
}

/** Reads and validates a catalog file: YAML, or JSON when its name ends in `.json`. */
export async function loadCatalogFile(file: string): Promise<CatalogDefinition> {
  const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new InvalidCatalogError(file, [{ path: "", message: `cannot read ${file} (${error.code ?? error.message})` }]);
  });
  return parseCatalog(text, { source: file, format: file.endsWith(".json") ? "json" : "yaml" });
}

/** The default catalog, `catalog/default.yaml` in the package: the plans used when no file is given. */
export function loadDefaultCatalog(): Promise<CatalogDefinition> {
  return loadCatalogFile(packagePath("catalog", "default.yaml"));
}
