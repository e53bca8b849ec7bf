import { NO_TERMS } from "../../src/domain/terms.ts";
import { describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetPlanResponseSchema, ListPlansResponseSchema } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { GetMySubscriptionResponseSchema } from "../../gen/entitlements/v1/subscription_service_pb.js";
import { AccountStatus } from "../../gen/entitlements/v1/account_pb.js";
import { defaultMetrics, defaultPlans } from "../support/catalog.ts";
import { Catalog } from "../../src/domain/catalog.ts";
import {
  catalogAnswer,
  currentPlanAnswer,
  featureAnswer,
  quotaCheckAnswer,
  type CatalogInit,
  type CurrentPlanInit,
} from "../../src/services/messages.ts";
import { quotaState } from "../../src/domain/quota.ts";
import { isSharedAnswer } from "../../src/transport/shared-answers.ts";
import { EntitlementSource } from "../../gen/entitlements/v1/terms_pb.js";

const getPlan = (init: CurrentPlanInit) => create(GetPlanResponseSchema, init);
const mySubscription = (init: CurrentPlanInit) => create(GetMySubscriptionResponseSchema, init);
const listPlans = (init: CatalogInit) => create(ListPlansResponseSchema, init);
const [free, pro] = defaultPlans;
const now = new Date("2026-06-10T08:00:00Z");

describe("currentPlanAnswer", () => {
  it("gives every user without a subscription one shared, frozen answer per plan, status and response", () => {
    const first = currentPlanAnswer({ plan: free!, subscription: undefined, suspended: false, terms: NO_TERMS, scheduledChange: undefined }, now, getPlan);
    const second = currentPlanAnswer({ plan: free!, subscription: undefined, suspended: false, terms: NO_TERMS, scheduledChange: undefined }, now, getPlan);
    expect(second).toBe(first);
    expect(isSharedAnswer(first)).toBe(true);
    expect(Object.isFrozen(first)).toBe(true);
    expect(first).toMatchObject({ plan: { code: "free" }, accountStatus: AccountStatus.ACTIVE });

    const suspended = currentPlanAnswer({ plan: free!, subscription: undefined, suspended: true, terms: NO_TERMS, scheduledChange: undefined }, now, getPlan);
    expect(suspended).not.toBe(first);
    expect(suspended.accountStatus).toBe(AccountStatus.SUSPENDED);
    expect(currentPlanAnswer({ plan: pro!, subscription: undefined, suspended: false, terms: NO_TERMS, scheduledChange: undefined }, now, getPlan).plan?.code).toBe("pro");
    const asSubscription = currentPlanAnswer({ plan: free!, subscription: undefined, suspended: false, terms: NO_TERMS, scheduledChange: undefined }, now, mySubscription);
    expect(asSubscription.$typeName).toBe(GetMySubscriptionResponseSchema.typeName);
  });

  it("builds a fresh answer for a user with a subscription, which is theirs alone", () => {
    const subscription = { userId: "u", planCode: "pro", planVersion: 1, startedAt: new Date("2026-06-01T00:00:00Z"), expiresAt: null, endedAt: null };
    const answer = currentPlanAnswer({ plan: pro!, subscription, suspended: false, terms: NO_TERMS, scheduledChange: undefined }, now, getPlan);
    expect(answer.subscription?.userId).toBe("u");
    expect(isSharedAnswer(answer)).toBe(false);
    expect(currentPlanAnswer({ plan: pro!, subscription, suspended: false, terms: NO_TERMS, scheduledChange: undefined }, now, getPlan)).not.toBe(answer);
  });
});

describe("catalogAnswer", () => {
  it("answers with one shared message per catalog, and a new one once the catalog is replaced", () => {
    const catalog = new Catalog(defaultPlans, defaultMetrics);
    const answer = catalogAnswer(catalog, listPlans);
    expect(catalogAnswer(catalog, listPlans)).toBe(answer);
    expect(answer.plans.map((plan) => plan.code)).toEqual(["free", "pro", "enterprise"]);
    expect(toBinary(ListPlansResponseSchema, answer).length).toBeGreaterThan(0);
    expect(catalogAnswer(new Catalog(defaultPlans, defaultMetrics), listPlans)).not.toBe(answer);
  });
});

describe("featureAnswer", () => {
  it("answers with one shared, frozen message per plan, outcome and source", () => {
    const enabled = featureAnswer(pro!, true, "plan");
    expect(featureAnswer(pro!, true, "plan")).toBe(enabled);
    expect(isSharedAnswer(enabled)).toBe(true);
    expect(Object.isFrozen(enabled)).toBe(true);
    expect(enabled).toMatchObject({ enabled: true, planCode: "pro", source: EntitlementSource.PLAN });
    expect(featureAnswer(pro!, false, "plan")).toMatchObject({ enabled: false, planCode: "pro" });
    expect(featureAnswer(free!, true, "plan")).toMatchObject({ enabled: true, planCode: "free" });
    const overridden = featureAnswer(pro!, true, "override");
    expect(overridden).not.toBe(enabled);
    expect(overridden).toMatchObject({ enabled: true, source: EntitlementSource.OVERRIDE });
    expect(featureAnswer(pro!, false, "override")).toMatchObject({ enabled: false, source: EntitlementSource.OVERRIDE });
  });
});

describe("quotaCheckAnswer", () => {
  const jobs = defaultMetrics.find((metric) => metric.code === "jobs")!;
  const storage = defaultMetrics.find((metric) => metric.resetPeriod === "never")!;

  it("shares one frozen answer among checks that find the same state with the same outcome", () => {
    const answer = quotaCheckAnswer(undefined, quotaState(jobs, 10n, 3n, now));
    expect(quotaCheckAnswer(undefined, quotaState(jobs, 10n, 3n, new Date("2026-06-20T00:00:00Z")))).toBe(answer);
    expect(isSharedAnswer(answer)).toBe(true);
    expect(Object.isFrozen(answer)).toBe(true);
    expect(answer).toMatchObject({ allowed: true, quota: { metric: "jobs", used: 3n, limit: 10n, remaining: 7n } });
    expect(answer.quota?.periodStart?.seconds).toBe(BigInt(Date.parse("2026-06-01T00:00:00Z") / 1000));
  });

  it("answers anew whatever differs: outcome and its reason, amount used, limit, period, metric", () => {
    const answer = quotaCheckAnswer(undefined, quotaState(jobs, 10n, 3n, now));
    const others = [
      quotaCheckAnswer("quota", quotaState(jobs, 10n, 3n, now)),
      quotaCheckAnswer("suspended", quotaState(jobs, 10n, 3n, now)),
      quotaCheckAnswer(undefined, quotaState(jobs, 10n, 4n, now)),
      quotaCheckAnswer(undefined, quotaState(jobs, 11n, 3n, now)),
      quotaCheckAnswer(undefined, quotaState(jobs, null, 3n, now)),
      quotaCheckAnswer(undefined, quotaState(jobs, 10n, 3n, new Date("2026-07-01T00:00:00Z"))),
      quotaCheckAnswer(undefined, quotaState(storage, 10n, 3n, now)),
    ];
    expect(new Set([answer, ...others]).size).toBe(others.length + 1);
    expect(others.map((other) => [other.allowed, other.quota?.metric, other.quota?.used, other.quota?.limit])).toEqual([
      [false, "jobs", 3n, 10n],
      [false, "jobs", 3n, 10n],
      [true, "jobs", 4n, 10n],
      [true, "jobs", 3n, 11n],
      [true, "jobs", 3n, undefined],
      [true, "jobs", 3n, 10n],
      [true, storage.code, 3n, 10n],
    ]);
  });

  it("stays right past its bound", () => {
    for (let used = 0n; used < 5000n; used++) quotaCheckAnswer(undefined, quotaState(jobs, null, used, now));
    expect(quotaCheckAnswer(undefined, quotaState(jobs, null, 1n, now))).toMatchObject({ allowed: true, quota: { used: 1n } });
  });
});
