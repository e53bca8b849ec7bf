import { NO_TERMS } from "../../src/domain/terms.ts";
import { describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetPlanResponseSchema, ListPlansResponseSchema } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { GetMySubscriptionResponseSchema } from "../../gen/entitlements/v1/subscription_service_pb.js";
import { AccountStatus } from "../../gen/entitlements/v1/account_pb.js";
import { defaultMetrics, defaultPlans } from "../support/catalog.ts";
import { Catalog } from "../../src/domain/catalog.ts";
import { catalogAnswer, currentPlanAnswer, type CatalogInit, type CurrentPlanInit } from "../../src/services/messages.ts";
import { featureAnswer, getPlanAnswer, quotaCheckAnswer } from "../../src/services/fresh-answers.ts";
import type { CurrentPlan } from "../../src/app/current-plan.ts";
import type { AccountStanding } from "../../src/db/accounts.ts";
import type { Plan } from "../../src/domain/catalog.ts";
import type { SubscriptionRecord } from "../../src/domain/subscriptions.ts";
import { quotaState } from "../../src/domain/quota.ts";
import { isSharedAnswer } from "../../src/transport/shared-answers.ts";
import { EntitlementSource } from "../../gen/entitlements/v1/terms_pb.js";

const getPlan = (init: CurrentPlanInit) => create(GetPlanResponseSchema, init);
const mySubscription = (init: CurrentPlanInit) => create(GetMySubscriptionResponseSchema, init);
const listPlans = (init: CatalogInit) => create(ListPlansResponseSchema, init);
const [free, pro] = defaultPlans;
const now = new Date("2026-06-10T08:00:00Z");

/** A standing read at `readAt` with `revision` (its other fields do not matter to these answers). */
const standingAt = (revision: bigint, readAt = now): AccountStanding => ({
  status: "active",
  tokensValidAfter: null,
  revision,
  readAt,
  subscription: null,
  trial: null,
  scheduledChange: null,
  terms: NO_TERMS,
});
const standing = standingAt(3n);
const currentOn = (plan: Plan, options: { suspended?: boolean; subscription?: SubscriptionRecord; standing?: AccountStanding } = {}): CurrentPlan => ({
  plan,
  subscription: options.subscription,
  suspended: options.suspended ?? false,
  terms: NO_TERMS,
  scheduledChange: undefined,
  standing: options.standing ?? standing,
});

describe("currentPlanAnswer", () => {
  it("gives every user without a subscription one shared, frozen answer per plan, status and response", () => {
    const first = currentPlanAnswer(currentOn(free!), now, getPlan);
    const second = currentPlanAnswer(currentOn(free!), now, getPlan);
    expect(second).toBe(first);
    expect(isSharedAnswer(first)).toBe(true);
    expect(Object.isFrozen(first)).toBe(true);
    expect(first).toMatchObject({ plan: { code: "free" }, accountStatus: AccountStatus.ACTIVE });

    const suspended = currentPlanAnswer(currentOn(free!, { suspended: true }), now, getPlan);
    expect(suspended).not.toBe(first);
    expect(suspended.accountStatus).toBe(AccountStatus.SUSPENDED);
    expect(currentPlanAnswer(currentOn(pro!), now, getPlan).plan?.code).toBe("pro");
    const asSubscription = currentPlanAnswer(currentOn(free!), now, mySubscription);
    expect(asSubscription.$typeName).toBe(GetMySubscriptionResponseSchema.typeName);
  });

  it("builds a fresh answer for a user with a subscription, which is theirs alone", () => {
    const subscription = { userId: "u", planCode: "pro", planVersion: 1, startedAt: new Date("2026-06-01T00:00:00Z"), expiresAt: null, endedAt: null };
    const answer = currentPlanAnswer(currentOn(pro!, { subscription }), now, getPlan);
    expect(answer.subscription?.userId).toBe("u");
    expect(isSharedAnswer(answer)).toBe(false);
    expect(currentPlanAnswer(currentOn(pro!, { subscription }), now, getPlan)).not.toBe(answer);
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

describe("getPlanAnswer", () => {
  it("states the standing's revision and when it was read, shared while the standing is", () => {
    const answer = getPlanAnswer(currentOn(free!), now);
    expect(answer).toMatchObject({ plan: { code: "free" }, revision: 3n, asOf: { seconds: BigInt(now.getTime() / 1000) } });
    expect(getPlanAnswer(currentOn(free!), new Date("2026-06-11T00:00:00Z"))).toBe(answer);
    expect(isSharedAnswer(answer)).toBe(true);
    const later = getPlanAnswer(currentOn(free!, { standing: standingAt(4n, new Date("2026-06-10T09:00:00Z")) }), now);
    expect(later).not.toBe(answer);
    expect(later).toMatchObject({ revision: 4n, asOf: { seconds: BigInt(Date.parse("2026-06-10T09:00:00Z") / 1000) } });
  });

  it("builds a subscriber's answer for the instant asked about", () => {
    const subscription = { userId: "u", planCode: "pro", planVersion: 1, startedAt: new Date("2026-06-01T00:00:00Z"), expiresAt: null, endedAt: null };
    const answer = getPlanAnswer(currentOn(pro!, { subscription }), now);
    expect(answer).toMatchObject({ subscription: { userId: "u" }, revision: 3n });
    expect(isSharedAnswer(answer)).toBe(false);
  });
});

describe("featureAnswer", () => {
  it("answers with one shared, frozen message per standing, plan, outcome and source, stating the standing's freshness", () => {
    const current = currentOn(pro!);
    const enabled = featureAnswer(current, pro!, true, "plan");
    expect(featureAnswer(currentOn(pro!), pro!, true, "plan")).toBe(enabled);
    expect(isSharedAnswer(enabled)).toBe(true);
    expect(Object.isFrozen(enabled)).toBe(true);
    expect(enabled).toMatchObject({ enabled: true, planCode: "pro", source: EntitlementSource.PLAN, revision: 3n, asOf: { seconds: BigInt(now.getTime() / 1000) } });
    expect(featureAnswer(current, pro!, false, "plan")).toMatchObject({ enabled: false, planCode: "pro" });
    expect(featureAnswer(current, free!, true, "plan")).toMatchObject({ enabled: true, planCode: "free" });
    const overridden = featureAnswer(current, pro!, true, "override");
    expect(overridden).not.toBe(enabled);
    expect(overridden).toMatchObject({ enabled: true, source: EntitlementSource.OVERRIDE });
    expect(featureAnswer(current, pro!, false, "override")).toMatchObject({ enabled: false, source: EntitlementSource.OVERRIDE });
    const fresher = featureAnswer(currentOn(pro!, { standing: standingAt(9n) }), pro!, true, "plan");
    expect(fresher).not.toBe(enabled);
    expect(fresher.revision).toBe(9n);
  });
});

describe("quotaCheckAnswer", () => {
  // One standing object per revision, as a replica's cache holds one per account.
  const standings = new Map<bigint, AccountStanding>();
  const standingOf = (revision: bigint) => standings.get(revision) ?? standings.set(revision, standingAt(revision)).get(revision)!;
  const jobs = defaultMetrics.find((metric) => metric.code === "jobs")!;
  const storage = defaultMetrics.find((metric) => metric.resetPeriod === "never")!;
  const check = (denial: "suspended" | "quota" | undefined, quota: ReturnType<typeof quotaState>, revision = 1n, asOf = now) => quotaCheckAnswer({ denial, quota, standing: standingOf(revision), asOf });

  it("shares one frozen answer among checks that find the same state with the same outcome and freshness", () => {
    const answer = check(undefined, quotaState(jobs, 10n, 3n, now));
    expect(check(undefined, quotaState(jobs, 10n, 3n, new Date("2026-06-20T00:00:00Z")))).toBe(answer);
    expect(isSharedAnswer(answer)).toBe(true);
    expect(Object.isFrozen(answer)).toBe(true);
    expect(answer).toMatchObject({ allowed: true, quota: { metric: "jobs", used: 3n, limit: 10n, remaining: 7n }, revision: 1n });
    expect(answer.quota?.periodStart?.seconds).toBe(BigInt(Date.parse("2026-06-01T00:00:00Z") / 1000));
  });

  it("answers anew whatever differs: outcome and its reason, amount used, limit, period, metric, revision, as_of", () => {
    const answer = check(undefined, quotaState(jobs, 10n, 3n, now));
    const others = [
      check("quota", quotaState(jobs, 10n, 3n, now)),
      check("suspended", quotaState(jobs, 10n, 3n, now)),
      check(undefined, quotaState(jobs, 10n, 4n, now)),
      check(undefined, quotaState(jobs, 11n, 3n, now)),
      check(undefined, quotaState(jobs, null, 3n, now)),
      check(undefined, quotaState(jobs, 10n, 3n, new Date("2026-07-01T00:00:00Z"))),
      check(undefined, quotaState(storage, 10n, 3n, now)),
      check(undefined, quotaState(jobs, 10n, 3n, now), 2n),
      check(undefined, quotaState(jobs, 10n, 3n, now), 1n, new Date(now.getTime() + 1)),
    ];
    expect(new Set([answer, ...others]).size).toBe(others.length + 1);
    expect(others.map((other) => [other.allowed, other.quota?.metric, other.quota?.used, other.quota?.limit, other.revision])).toEqual([
      [false, "jobs", 3n, 10n, 1n],
      [false, "jobs", 3n, 10n, 1n],
      [true, "jobs", 4n, 10n, 1n],
      [true, "jobs", 3n, 11n, 1n],
      [true, "jobs", 3n, undefined, 1n],
      [true, "jobs", 3n, 10n, 1n],
      [true, storage.code, 3n, 10n, 1n],
      [true, "jobs", 3n, 10n, 2n],
      [true, "jobs", 3n, 10n, 1n],
    ]);
  });

  it("answers each check by its own state as usage and outcomes alternate", () => {
    for (let used = 0n; used < 50n; used++) {
      expect(check(undefined, quotaState(jobs, null, used, now))).toMatchObject({ allowed: true, quota: { used } });
      expect(check("quota", quotaState(jobs, 10n, used, now))).toMatchObject({ allowed: false, quota: { used, limit: 10n } });
    }
  });
});
