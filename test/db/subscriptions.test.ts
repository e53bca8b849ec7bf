import { beforeAll, describe, expect, it } from "vitest";
import { sql, UniqueIntegrityConstraintViolationError } from "slonik";
import { z } from "zod";
import { CatalogSource } from "../../src/app/catalog-source.ts";
import { ensureAccount, findAccountStanding } from "../../src/db/accounts.ts";
import { Entitlements } from "../../src/app/entitlements.ts";
import { PlanChanges } from "../../src/app/plan-changes.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
let entitlements: Entitlements;
let planChanges: PlanChanges;
const clock = new TestClock("2026-04-01T00:00:00Z");
beforeAll(async () => {
  database = await createTestDatabase();
  entitlements = new Entitlements(database.pool, await CatalogSource.load(database.pool, createLogger("silent")), clock);
  planChanges = new PlanChanges(database.pool, entitlements, clock);
});

describe("subscriptions", () => {
  it("allow one current subscription per user, by the schema itself", async () => {
    await ensureAccount(database.pool, "schema-user", clock.now());
    const insert = sql.unsafe`
      insert into subscriptions (user_id, plan_code, plan_version, started_at) values ('schema-user', 'pro', 1, now())
    `;
    await database.pool.query(insert);
    await expect(database.pool.query(insert)).rejects.toBeInstanceOf(UniqueIntegrityConstraintViolationError);
  });

  it("stay consistent when plan changes for one user race", async () => {
    const userId = "racer";
    const plans = ["pro", "enterprise", "free", "pro", "enterprise", "pro", "free", "enterprise", "pro", "pro"];
    await Promise.all(plans.map((code) => planChanges.changePlan("cli", userId, entitlements.plan(code), undefined)));
    const counts = await database.pool.one(sql.type(z.object({ total: z.bigint(), current: z.bigint() }))`
      select count(*) as total, count(*) filter (where ended_at is null) as current
      from subscriptions where user_id = ${userId}
    `);
    expect(counts).toEqual({ total: 10n, current: 1n });
    expect((await findAccountStanding(database.pool, userId, new Date())).subscription).not.toBeNull();
  });
});
