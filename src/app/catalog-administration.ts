import type { CommonQueryMethods, DatabasePool } from "slonik";
import { recordAuditEvent } from "../db/audit-events.ts";
import { findAllFeatures } from "../db/features.ts";
import { findAllMetrics } from "../db/catalog-metrics.ts";
import { findDefaultPlan } from "../db/catalog-settings.ts";
import { findAllPlanVersions, planVersionSummaries } from "../db/plan-versions.ts";
import { findArchivedPlans } from "../db/plans.ts";
import { CatalogConflictError, findCatalogDefinition, seedCatalog } from "../db/seed.ts";
import { moveToLatestVersion } from "../db/subscriptions.ts";
import { catalogChanges } from "../domain/catalog-changes.ts";
import { cheapestFirst, latestVersions, type CatalogDefinition, type Feature, type Metric, type Plan } from "../domain/catalog.ts";
import type { Clock } from "../domain/clock.ts";
import { FailedPreconditionError, UnknownResourceError } from "../domain/errors.ts";
import { announceChange } from "./change-events.ts";
import type { Entitlements } from "./entitlements.ts";

/** The catalog as the database holds it: each plan at its latest version, archived ones too. */
export type CatalogView = {
  readonly defaultPlan: string;
  readonly metrics: readonly Metric[];
  readonly features: readonly Feature[];
  readonly plans: readonly { readonly plan: Plan; readonly archived: boolean }[];
};

/** One version of a plan, with who is on it. */
export type PlanVersionView = { readonly plan: Plan; readonly publishedAt: Date; readonly activeSubscribers: bigint };

/**
 * The catalog for superadmins (AdminService): read it, apply a whole catalog, see a plan's
 * versions, move subscribers to a plan's latest version. Every change is audited with its actor
 * in the transaction that makes it.
 */
export class CatalogAdministration {
  readonly #pool: DatabasePool;
  readonly #entitlements: Entitlements;
  readonly #clock: Clock;

  constructor(pool: DatabasePool, entitlements: Entitlements, clock: Clock) {
    this.#pool = pool;
    this.#entitlements = entitlements;
    this.#clock = clock;
  }

  async view(): Promise<CatalogView> {
    const [versions, archived, defaultPlan, metrics, features] = await Promise.all([
      findAllPlanVersions(this.#pool),
      findArchivedPlans(this.#pool),
      findDefaultPlan(this.#pool),
      findAllMetrics(this.#pool),
      findAllFeatures(this.#pool),
    ]);
    const plans = [...latestVersions(versions).values()]
      .sort(cheapestFirst)
      .map((plan) => ({ plan, archived: archived.includes(plan.code) }));
    return { defaultPlan, metrics, features, plans };
  }

  /**
   * Applies `catalog` (or, with `dryRun`, only says what it would change): the changes, one line
   * each, empty when it is already so. A change the database cannot take is failed_precondition.
   */
  async apply(actor: string, catalog: CatalogDefinition, dryRun: boolean): Promise<readonly string[]> {
    const changes = catalogChanges(await findCatalogDefinition(this.#pool), catalog);
    if (dryRun || changes.length === 0) return changes;
    const at = this.#clock.now();
    try {
      await seedCatalog(this.#pool, catalog, {
        at,
        record: (tx) => this.#audit(tx, actor, "catalog.apply", changes.join("\n"), at),
      });
    } catch (error) {
      if (error instanceof CatalogConflictError) throw new FailedPreconditionError(error.message);
      throw error;
    }
    await this.#entitlements.refreshCatalog();
    return changes;
  }

  /** Every version of a plan, archived or not, oldest first. */
  async versions(planCode: string): Promise<readonly PlanVersionView[]> {
    const summaries = await planVersionSummaries(this.#pool, planCode, this.#clock.now());
    if (summaries.length === 0) throw new UnknownResourceError("plan", planCode);
    const views: PlanVersionView[] = [];
    for (const summary of summaries) {
      const plan = await this.#entitlements.planAt(planCode, summary.version);
      if (plan !== undefined) views.push({ plan, publishedAt: summary.publishedAt, activeSubscribers: summary.activeSubscribers });
    }
    return views;
  }

  /** Moves a plan's current subscribers on older versions (or on `fromVersion`) to its latest; how many moved. */
  async migrateSubscribers(actor: string, planCode: string, fromVersion: number | undefined, dryRun: boolean): Promise<number> {
    if (this.#entitlements.catalog.plan(planCode) === undefined) throw new UnknownResourceError("plan", planCode);
    const at = this.#clock.now();
    const moved = await this.#pool.transaction(async (tx) => {
      const { userIds, latest } = await moveToLatestVersion(tx, { planCode, fromVersion, at, dryRun });
      if (dryRun || userIds.length === 0) return userIds;
      const event = { type: "entitlements.plan_version_migrated", at, details: { plan_code: planCode, version: String(latest) } } as const;
      for (const userId of userIds) await announceChange(tx, this.#entitlements, userId, event);
      const from = fromVersion === undefined ? "every older version" : `version ${fromVersion}`;
      await this.#audit(tx, actor, "plan.migrate_subscribers", `${planCode}: ${userIds.length} from ${from} to version ${latest}`, at);
      return userIds;
    });
    if (!dryRun) moved.forEach((userId) => this.#entitlements.forget(userId));
    return moved.length;
  }

  /** A catalog change concerns no one account: its audit event has no target user. */
  #audit(tx: CommonQueryMethods, actor: string, action: string, reason: string, at: Date): Promise<void> {
    return recordAuditEvent(tx, { actorId: actor, action, targetUserId: "", reason, at });
  }
}
