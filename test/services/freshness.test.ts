import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { composeService } from "../../src/compose.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase } from "../support/database.ts";
import { refusal } from "../support/refusals.ts";
import { inMemoryClient, TEST_SETTINGS } from "../support/service.ts";

/**
 * Two replicas on one database, each caching standings and usage, and hearing no notification
 * from the other: what one changes, the other sees only when asked for a revision it lacks.
 */
const clock = new TestClock("2026-03-15T12:00:00Z");
let a: ReturnType<typeof inMemoryClient>;
let b: ReturnType<typeof inMemoryClient>;

beforeAll(async () => {
  const database = await createTestDatabase();
  const settings = { ...TEST_SETTINGS, standingCacheSize: 1000, standingCacheTtlMs: 600_000 };
  const replicas = await Promise.all([0, 1].map(() => composeService(settings, database.pool, { clock, logger: createLogger("silent") })));
  for (const replica of replicas) replica.standings?.setEnabled(true);
  a = inMemoryClient(replicas[0]!.served);
  b = inMemoryClient(replicas[1]!.served);
});

const seconds = (at: string) => BigInt(Date.parse(at) / 1000);

describe("freshness", () => {
  it("every read states the account's revision and when its standing was read", async () => {
    const plan = await b.getPlan({ userId: "f-new" });
    expect(plan).toMatchObject({ revision: 0n, asOf: { seconds: seconds("2026-03-15T12:00:00Z") } });
    clock.advance(60_000);
    // Answered from the cache: as of when it was read.
    expect(await b.hasFeature({ userId: "f-new", feature: "sso" })).toMatchObject({ revision: 0n, asOf: { seconds: seconds("2026-03-15T12:00:00Z") } });
    expect(await b.getUsage({ userId: "f-new" })).toMatchObject({ revision: 0n });
    expect(await b.checkQuota({ userId: "f-new", metric: "jobs" })).toMatchObject({ revision: 0n });
  });

  it("a write answers the revision it made, and a read through another replica with it as min_revision sees the write", async () => {
    const userId = "f-mover";
    expect((await b.getPlan({ userId })).plan?.code).toBe("free");
    const upgraded = await a.upgradePlan({ userId, planCode: "pro" });
    expect(upgraded.revision).toBe(1n);
    // Replica b has heard nothing: its cached standing still says free.
    expect(await b.getPlan({ userId })).toMatchObject({ plan: { code: "free" }, revision: 0n });
    const fresh = await b.getPlan({ userId, minRevision: upgraded.revision });
    expect(fresh).toMatchObject({ plan: { code: "pro" }, revision: 1n, asOf: { seconds: BigInt(clock.now().getTime() / 1000) } });
    expect(await b.getPlan({ userId })).toMatchObject({ plan: { code: "pro" }, revision: 1n });

    const overridden = await a.setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "pilot" });
    expect(overridden.revision).toBe(2n);
    expect((await b.hasFeature({ userId, feature: "sso" })).enabled).toBe(false);
    expect(await b.hasFeature({ userId, feature: "sso", minRevision: 2n })).toMatchObject({ enabled: true, revision: 2n });
  });

  it("CheckQuota with min_revision reads usage afresh too, so increments through another replica count", async () => {
    const userId = "f-counter";
    expect((await b.checkQuota({ userId, metric: "jobs" })).quota?.used).toBe(0n);
    const incremented = await a.incrementUsage({ userId, metric: "jobs", amount: 4n });
    expect(incremented.revision).toBe(0n);
    expect((await b.checkQuota({ userId, metric: "jobs" })).quota?.used).toBe(0n);
    expect((await b.checkQuota({ userId, metric: "jobs", minRevision: incremented.revision })).quota?.used).toBe(4n);
  });

  it("an increment with min_revision is decided on a standing at least that fresh", async () => {
    const userId = "f-limit";
    // Under the free plan's first alert threshold (80% of 10), so that b hears of nothing.
    await b.incrementUsage({ userId, metric: "jobs", amount: 7n });
    const upgraded = await a.upgradePlan({ userId, planCode: "pro" });
    expect((await refusal(b.incrementUsage({ userId, metric: "jobs", amount: 4n }))).code).toBe(Code.ResourceExhausted);
    const granted = await b.incrementUsage({ userId, metric: "jobs", amount: 4n, minRevision: upgraded.revision });
    expect(granted).toMatchObject({ quota: { used: 11n, limit: 500n }, revision: 1n });
  });

  it("a negative min_revision is invalid_argument", async () => {
    const error = await refusal(b.getPlan({ userId: "f-x", minRevision: -1n }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain("min_revision");
  });
});
