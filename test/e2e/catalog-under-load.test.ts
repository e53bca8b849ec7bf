import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import type { Plan } from "../../gen/entitlements/v1/plan_pb.js";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { createEntitlementClient } from "../../clients/node/src/index.ts";
import { seedCatalog } from "../../src/db/seed.ts";
import type { CatalogDefinition } from "../../src/domain/catalog.ts";
import { defaultCatalog } from "../support/catalog.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { spawnService, type ServiceProcess } from "../support/process.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/**
 * Catalogs applied in a loop while two replicas answer calls: every answer is one published
 * version, never a mix, and both replicas serve the last one soon after it commits (the change
 * notification; the periodic refresh is 30 s away).
 */
const APPLIES = 12;
let database: TestDatabase;
let processes: ServiceProcess[];
let replicas: Client<typeof EntitlementService>[];

beforeAll(async () => {
  database = await createTestDatabase();
  const env = { ...database.env, SERVICE_TOKENS: SERVICE_TOKEN };
  processes = await Promise.all([spawnService(env), spawnService(env)]);
  replicas = processes.map((service) => createEntitlementClient({ baseUrl: `http://127.0.0.1:${service.grpcPort}`, token: SERVICE_TOKEN, timeoutMs: 10_000 }));
}, 60_000);

afterAll(() => Promise.all(processes.map((service) => service.stop())));

/** Pro's terms at version `version`: 1 is the default catalog's, each later one its own price and limit. */
const expected = (version: number) => (version === 1 ? { priceCents: 1999n, jobs: 500n } : { priceCents: BigInt(2000 + version), jobs: BigInt(500 + version) });

/** The default catalog with pro at version `version`'s terms. */
function proAt(version: number): CatalogDefinition {
  const { priceCents, jobs } = expected(version);
  return {
    ...defaultCatalog,
    plans: defaultCatalog.plans.map((plan) =>
      plan.code === "pro" ? { ...plan, priceCents, quotas: plan.quotas.map((quota) => (quota.metric === "jobs" ? { ...quota, limit: jobs } : quota)) } : plan,
    ),
  };
}

/** Pro as an answer shows it: its version, price and jobs limit. */
const seen = (plan: Plan | undefined) => ({ version: plan?.version, priceCents: plan?.priceCents, jobs: plan?.quotas.find((quota) => quota.metric === "jobs")?.limit });

describe("a catalog applied under load", () => {
  it("never gives an answer that mixes two versions, and reaches every replica by notification", async () => {
    const answers: ReturnType<typeof seen>[] = [];
    let applying = true;
    const readers = replicas.flatMap((client) =>
      [0, 1, 2].map(async () => {
        while (applying) {
          const { plans } = await client.listPlans({});
          answers.push(seen(plans.find((plan) => plan.code === "pro")));
        }
      }),
    );
    for (let version = 2; version <= APPLIES + 1; version++) {
      await seedCatalog(database.pool, proAt(version));
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    const last = APPLIES + 1;
    // Within 5 s, far under the 30 s refresh: the change notification carried it.
    for (const client of replicas) {
      await expect.poll(async () => seen((await client.listPlans({})).plans.find((plan) => plan.code === "pro")).version, { timeout: 5000, interval: 20 }).toBe(last);
    }
    applying = false;
    await Promise.all(readers);

    expect(answers.length).toBeGreaterThan(APPLIES * 6);
    for (const answer of answers) expect(answer).toEqual({ version: answer.version, ...expected(answer.version!) });
    expect(new Set(answers.map((answer) => answer.version)).size).toBeGreaterThan(2);
  });
});
