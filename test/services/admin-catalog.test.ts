import { describe, expect, it } from "vitest";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { Catalog } from "../../gen/entitlements/v1/catalog_pb.js";
import { BillingInterval, ResetPeriod } from "../../gen/entitlements/v1/plan_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { refusal } from "../support/refusals.ts";
import { startAdminTestServer } from "../support/server.ts";
import { feedEventsOf } from "../support/feed-events.ts";
import { userToken } from "../support/service.ts";

/** AdminService's catalog RPCs: GetCatalog, ApplyCatalog, ListPlanVersions, MigrateSubscribers. */
const { server, admin, entitlements } = await startAdminTestServer("catalog-root");

/** The current catalog with pro's jobs limit set to `jobs`. */
async function withProJobs(jobs: bigint): Promise<Catalog> {
  const { catalog } = await admin.getCatalog({});
  for (const { plan } of catalog!.plans) {
    if (plan?.code === "pro") plan.quotas = plan.quotas.map((quota) => (quota.metric === "jobs" ? { ...quota, limit: jobs } : quota));
  }
  return catalog!;
}

describe("the catalog RPCs", () => {
  it("GetCatalog gives the catalog as a file declares it", async () => {
    const { catalog } = await admin.getCatalog({});
    expect(catalog?.defaultPlan).toBe("free");
    expect(catalog?.metrics.find((metric) => metric.code === "jobs")).toMatchObject({ reset: ResetPeriod.MONTH, description: "Jobs run per UTC month" });
    expect(catalog?.features).toHaveLength(7);
    expect(catalog?.plans.map(({ plan, archived }) => [plan?.code, plan?.version, plan?.interval, archived])).toEqual([
      ["free", 1, BillingInterval.MONTH, false],
      ["pro", 1, BillingInterval.MONTH, false],
      ["enterprise", 1, BillingInterval.MONTH, false],
    ]);
  });

  it("ApplyCatalog says what it would change, applies it, audits it, and then finds nothing to change", async () => {
    const raised = await withProJobs(800n);
    const dry = await admin.applyCatalog({ catalog: raised, dryRun: true });
    expect(dry.changes.map((change) => [change.path, change.change])).toEqual([["plans.pro", "new version (quotas.jobs 500 -> 800)"]]);
    expect((await entitlements.listPlans({})).plans.find((plan) => plan.code === "pro")?.version).toBe(1);
    const applied = await admin.applyCatalog({ catalog: raised });
    expect(applied.changes).toHaveLength(1);
    expect((await entitlements.listPlans({})).plans.find((plan) => plan.code === "pro")).toMatchObject({ version: 2 });
    expect((await admin.applyCatalog({ catalog: raised })).changes).toEqual([]);
    const { events } = await admin.listAuditEvents({});
    expect(events[0]).toMatchObject({ actorId: "catalog-root", action: "catalog.apply", targetUserId: "", reason: "plans.pro: new version (quotas.jobs 500 -> 800)" });
  });

  it("ApplyCatalog refuses an invalid catalog with the CLI's paths as BadRequest fields", async () => {
    const catalog = await withProJobs(800n);
    for (const { plan } of catalog.plans) if (plan?.code === "pro") plan.quotas.push({ ...plan.quotas[0]!, metric: "jbos" });
    catalog.metrics.push({ ...catalog.metrics[0]!, $typeName: catalog.metrics[0]!.$typeName });
    const error = await refusal(admin.applyCatalog({ catalog }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations.map((violation) => violation.field)).toEqual([`metrics.${catalog.metrics[0]!.code}`]);
    catalog.metrics.pop();
    const unknown = await refusal(admin.applyCatalog({ catalog }));
    expect(unknown.findDetails(BadRequestSchema)[0]?.fieldViolations.map((violation) => [violation.field, violation.description])).toEqual([
      ["plans.pro.quotas.jbos", 'unknown metric "jbos"'],
    ]);
  });

  it("ListPlanVersions and MigrateSubscribers move subscribers to the latest version, keeping their expiry", async () => {
    await entitlements.upgradePlan({ userId: "on-v2", planCode: "pro", durationDays: 30 });
    await admin.applyCatalog({ catalog: await withProJobs(900n) });
    const before = await admin.listPlanVersions({ planCode: "pro" });
    expect(before.versions.map((version) => [version.plan?.version, version.activeSubscribers])).toEqual([
      [1, 0n],
      [2, 1n],
      [3, 0n],
    ]);
    expect(timestampDate(before.versions[2]!.publishedAt!).getTime()).toBeGreaterThan(0);
    const expiry = (await entitlements.getPlan({ userId: "on-v2" })).subscription?.expiresAt;
    expect((await admin.migrateSubscribers({ planCode: "pro", dryRun: true })).migrated).toBe(1n);
    expect((await entitlements.checkQuota({ userId: "on-v2", metric: "jobs" })).quota?.limit).toBe(800n);
    expect((await admin.migrateSubscribers({ planCode: "pro" })).migrated).toBe(1n);
    const after = await entitlements.getPlan({ userId: "on-v2" });
    expect(after.plan?.version).toBe(3);
    expect(after.subscription).toMatchObject({ planVersion: 3, expiresAt: expiry });
    expect((await entitlements.checkQuota({ userId: "on-v2", metric: "jobs" })).quota?.limit).toBe(900n);
    // One change feed event for the move (none for the dry run), and none for a move of nobody.
    expect(await feedEventsOf(server.pool, "on-v2")).toEqual(["1 entitlements.plan_changed", "2 entitlements.plan_version_migrated"]);
    expect((await admin.migrateSubscribers({ planCode: "pro", fromVersion: 2 })).migrated).toBe(0n);
    expect(await feedEventsOf(server.pool, "on-v2")).toHaveLength(2);
    const unknown = await refusal(admin.listPlanVersions({ planCode: "nope" }));
    expect(unknown.code).toBe(Code.NotFound);
  });

  it("are served under /v1 too", async () => {
    const headers = { authorization: `Bearer ${await userToken("catalog-root")}`, "content-type": "application/json" };
    const catalog = await fetch(`${server.httpUrl}/v1/admin/catalog`, { headers });
    expect(catalog.status).toBe(200);
    expect(((await catalog.json()) as { catalog: { defaultPlan: string } }).catalog.defaultPlan).toBe("free");
    const versions = await fetch(`${server.httpUrl}/v1/admin/plans/pro/versions`, { headers });
    expect(((await versions.json()) as { versions: unknown[] }).versions.length).toBeGreaterThan(0);
    const dryRun = await fetch(`${server.httpUrl}/v1/admin/plans/pro:migrateSubscribers`, { method: "POST", headers, body: JSON.stringify({ dryRun: true }) });
    expect(dryRun.status).toBe(200);
    const applied = await fetch(`${server.httpUrl}/v1/admin/catalog:apply`, { method: "POST", headers, body: JSON.stringify({ catalog: {}, dryRun: true }) });
    expect(applied.status).toBe(400);
  });
});
