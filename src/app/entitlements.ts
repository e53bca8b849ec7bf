import type { CommonQueryMethods, DatabasePool } from "slonik";
import type { CatalogSource } from "./catalog-source.ts";
import type { Clock } from "../domain/clock.ts";
import type { ReplicaCache } from "./replica-cache.ts";
import { afterCallCommit, queriesOf } from "../db/call-transaction.ts";
import type { IncrementBatcher } from "../db/increment-batcher.ts";
import { findAccountStanding, type AccountStanding } from "../db/accounts.ts";
import { usageRowId, type UsageRowKey } from "../db/usage-counters.ts";
import { findUsageLevel, findUsageLevels } from "../db/usage-levels.ts";
import { Coalescer } from "../db/coalescer.ts";
import type { Metric, Plan } from "../domain/catalog.ts";
import { AccountSuspendedError, FailedPreconditionError, UnknownResourceError } from "../domain/errors.ts";
import { fits, levelStands, quotaOf, usageRowOf, type QuotaState, type UsageLevel } from "../domain/quota.ts";
import { subscriptionInForce, type SubscriptionRecord } from "../domain/subscriptions.ts";
import { inForce } from "../domain/terms.ts";
import type { CurrentPlan } from "./current-plan.ts";
import { decideIncrement, type Increment, type IncrementResult } from "./increments.ts";

/** What follows usage as it is written (usage alerts). */
export type UsageWatcher = {
  /** A change that raised usage committed, leaving the rows `quotas`. */
  raised(userId: string, quotas: readonly QuotaState[]): void;
  /** The account changed (a usage reset, say): what was known of it is stale. */
  forgotten(userId: string): void;
};

export type QuotaCheck = {
  readonly denial: "suspended" | "quota" | undefined;
  readonly quota: QuotaState;
  /** The account standing it was decided on (its revision is the answer's). */
  readonly standing: AccountStanding;
  /** When the older of the standing and the usage was read. */
  readonly asOf: Date;
};

/**
 * The operations on a user's entitlements, shared by every RPC service. Inputs are already
 * validated; the database decides everything that concurrency could change.
 */
export class Entitlements {
  readonly #pool: DatabasePool;

  /** The call's deadline-bound transaction, or the pool (db/call-transaction.ts). */
  get #db(): CommonQueryMethods {
    return queriesOf(this.#pool);
  }
  readonly #catalog: CatalogSource;
  readonly #clock: Clock;

  readonly #standings: ReplicaCache<AccountStanding> | undefined;
  /** Usage rows (count and holds) for CheckQuota, grouped by user; this replica's changes evict them. */
  readonly #usage: ReplicaCache<UsageLevel> | undefined;
  readonly #batcher: IncrementBatcher | undefined;
  readonly #usageWatcher: UsageWatcher | undefined;
  /** Usage reads through the pool that arrive together go in one query. */
  readonly #usageReads: Coalescer<UsageRowKey, UsageLevel> | undefined;

  /**
   * Without `standings`, every call reads the account's standing from the database; without
   * `usage`, every CheckQuota its usage; without `batcher`, every increment is its own statement;
   * without `coalesceReads`, every usage read is its own query.
   */
  constructor(
    pool: DatabasePool,
    catalog: CatalogSource,
    clock: Clock,
    options: {
      readonly standings?: ReplicaCache<AccountStanding>;
      readonly usage?: ReplicaCache<UsageLevel>;
      readonly batcher?: IncrementBatcher;
      readonly coalesceReads?: boolean;
      /** Told of committed changes that raised usage, and of accounts read afresh (usage alerts). */
      readonly usageWatcher?: UsageWatcher;
    } = {},
  ) {
    this.#pool = pool;
    this.#catalog = catalog;
    this.#clock = clock;
    this.#standings = options.standings;
    this.#usage = options.usage;
    this.#batcher = options.batcher;
    this.#usageWatcher = options.usageWatcher;
    this.#usageReads = options.coalesceReads === true ? new Coalescer((rows) => findUsageLevels(pool, rows, clock.now())) : undefined;
  }

  /**
   * The account's status, sessions, subscription, trial, scheduled change and terms: from the
   * cache when there is one.
   * Read through the pool, outside any call transaction: a load the cache shares between calls
   * must not end with one caller's deadline, nor hold that call's connection while it waits.
   */
  async standing(userId: string, minRevision?: bigint): Promise<AccountStanding> {
    const load = () => findAccountStanding(this.#pool, userId, this.now());
    if (this.#standings === undefined) return load();
    const cached = await this.#standings.get(userId, "", load);
    if (minRevision === undefined || cached.revision >= minRevision) return cached;
    // Older than the caller has seen (a change through another replica not yet announced here).
    this.forget(userId);
    return this.#standings.get(userId, "", load);
  }

  /**
   * Usage of the account changed here: its cached usage is evicted once the change commits,
   * before its caller hears of it; with grants drawn, its standing too (the draw told the other
   * replicas). A change that raised usage passes the rows it left (`raised`), for usage alerts.
   */
  usageChanged(userId: string, drewGrants: boolean, raised: readonly QuotaState[] = []): void {
    afterCallCommit(() => {
      if (drewGrants) this.forget(userId);
      else this.#usage?.evict(userId);
      if (raised.length > 0) this.#usageWatcher?.raised(userId, raised);
    });
  }

  /** The account changed (committed here, or announced by another replica): read it afresh. */
  forget(userId: string): void {
    this.#standings?.evict(userId);
    this.#usage?.evict(userId);
    this.#usageWatcher?.forgotten(userId);
  }

  get catalog() {
    return this.#catalog.current;
  }

  /** The version a scheduled change moves to (none for the default plan: no subscription then). */
  readonly #scheduledVersion = (code: string): number | undefined => (code === this.catalog.defaultPlan.code ? undefined : this.catalog.plan(code)?.version);

  now(): Date {
    return this.#clock.now();
  }

  /** A plan someone can subscribe to now: known, and not archived. */
  plan(code: string): Plan {
    const plan = this.catalog.plan(code);
    if (plan === undefined) {
      throw new UnknownResourceError("plan", code);
    }
    if (this.catalog.isArchived(code)) {
      throw new FailedPreconditionError(`plan "${code}" is archived: its subscribers keep it, nobody new can subscribe`);
    }
    return plan;
  }

  metric(code: string): Metric {
    const metric = this.catalog.metric(code);
    if (metric === undefined) {
      throw new UnknownResourceError("metric", code);
    }
    return metric;
  }

  /**
   * The plan at the version a subscription started on. A version published a moment ago by
   * another replica may not be in this one's catalog yet: it reads the catalog again for it.
   */
  subscribedPlan(subscription: SubscriptionRecord, db?: CommonQueryMethods): Promise<Plan | undefined> {
    return this.planAt(subscription.planCode, subscription.planVersion, db);
  }

  /**
   * A plan at one of its versions, reading the catalog again for one this replica has not seen
   * yet (through `db` inside a transaction).
   */
  async planAt(code: string, version: number, db?: CommonQueryMethods): Promise<Plan | undefined> {
    const known = this.catalog.planVersion(code, version);
    if (known !== undefined) return known;
    await this.#catalog.refresh(db);
    return this.catalog.planVersion(code, version);
  }

  /** Reads the catalog again now (after a change made here), rather than on its notification. */
  refreshCatalog(): Promise<void> {
    return this.#catalog.refresh();
  }

  /**
   * The plan the account is on at `at`, decided as of then with no job having run: a scheduled
   * change that came due, a trial, the subscription (domain/subscriptions.ts subscriptionInForce).
   */
  async currentPlan(userId: string, at: Date, minRevision?: bigint): Promise<CurrentPlan> {
    return this.planOf(userId, await this.standing(userId, minRevision), at);
  }

  /** The plan `standing` puts the account on at `at` (see currentPlan); inside a transaction, pass its `db`. */
  async planOf(userId: string, standing: AccountStanding, at: Date, db?: CommonQueryMethods): Promise<CurrentPlan> {
    const suspended = standing.status === "suspended";
    const { terms } = standing;
    const pending = standing.scheduledChange;
    const scheduledChange = pending !== null && pending.effectiveAt.getTime() > at.getTime() ? pending : undefined;
    const subscription = subscriptionInForce(userId, standing, at, this.#scheduledVersion);
    // The version the subscription started on, whose terms it keeps: from this replica's catalog
    // without a turn of the event loop, read afresh only when it is newer than that catalog. A
    // version found nowhere leaves the subscriber on the default plan rather than failing them.
    const plan =
      subscription === null
        ? undefined
        : (this.catalog.planVersion(subscription.planCode, subscription.planVersion) ?? (await this.subscribedPlan(subscription, db)));
    return plan === undefined || subscription === null
      ? { plan: this.catalog.defaultPlan, subscription: undefined, suspended, terms, scheduledChange, standing }
      : { plan, subscription, suspended, terms, scheduledChange, standing };
  }

  /**
   * The user's usage of one metric now: from the cache or a coalesced read, outside any call
   * transaction (a read answered from memory costs the database nothing, deadline or not). A
   * cached level one of whose holds has expired since is read again; `readThrough` skips the cache.
   */
  async quota(userId: string, metric: Metric, current: CurrentPlan, at: Date): Promise<QuotaState> {
    const level = await this.#level(userId, metric, current, at, false);
    return quotaOf(metric, current, level.used, at, null, level.reserved);
  }

  async #level(userId: string, metric: Metric, current: CurrentPlan, at: Date, readThrough: boolean): Promise<UsageLevel> {
    const row = { userId, ...usageRowOf(metric, current, at) };
    const load = () => (this.#usageReads === undefined ? findUsageLevel(this.#pool, row, at) : this.#usageReads.submit(row));
    if (readThrough) this.#usage?.evict(userId);
    let level = await (this.#usage === undefined ? load() : this.#usage.get(userId, usageRowId(row), load));
    if (!levelStands(level, at)) {
      this.#usage?.evict(userId);
      level = await load();
    }
    return level;
  }

  /** The user's usage of every metric of the plan and of the account's quota overrides, in one query. */
  async quotas(userId: string, current: CurrentPlan, at: Date): Promise<readonly QuotaState[]> {
    const codes = new Set(current.plan.quotas.map((quota) => quota.metric));
    for (const override of current.terms.overrides) {
      if (override.kind === "quota" && inForce(override.expiresAt, at) && this.catalog.metric(override.target) !== undefined) codes.add(override.target);
    }
    const metrics = [...codes].sort().map((code) => this.metric(code));
    const levels = await findUsageLevels(
      this.#db,
      metrics.map((metric) => ({ userId, ...usageRowOf(metric, current, at) })),
      at,
    );
    return metrics.map((metric, index) => quotaOf(metric, current, levels[index]!.used, at, null, levels[index]!.reserved));
  }

  /**
   * Whether `amount` fits now, and if not why: the account is suspended, or the quota is short;
   * with the account's revision, and when the oldest of what decided it was read. With
   * `minRevision`, the standing is at least that fresh and usage is read through (increments
   * raise no revision, so a caller demanding its own writes gets them all).
   */
  async checkQuota(userId: string, metric: Metric, amount: bigint, minRevision?: bigint): Promise<QuotaCheck> {
    const now = this.now();
    const current = await this.currentPlan(userId, now, minRevision);
    const level = await this.#level(userId, metric, current, now, minRevision !== undefined);
    const quota = quotaOf(metric, current, level.used, now, null, level.reserved);
    const fitting = fits(quota.used, amount, quota.limit, quota.grantRemaining, quota.reserved);
    const { readAt } = current.standing;
    const asOf = readAt.getTime() <= level.readAt.getTime() ? readAt : level.readAt;
    return { denial: current.suspended ? "suspended" : fitting ? undefined : "quota", quota, standing: current.standing, asOf };
  }

  /**
   * Check-and-consume in one statement; with a key, exactly once across retries. The user's
   * cached usage is evicted once the increment is committed, before its caller hears of it.
   */
  async increment(increment: Increment): Promise<IncrementResult> {
    const { result, drewGrants } = await this.#increment(increment);
    this.usageChanged(increment.userId, drewGrants, result.replayed ? [] : [result.quota]);
    return result;
  }

  async #increment(increment: Increment): Promise<{ result: IncrementResult; drewGrants: boolean }> {
    const now = this.now();
    const current = await this.currentPlan(increment.userId, now);
    if (current.suspended) {
      throw new AccountSuspendedError(increment.userId);
    }
    return decideIncrement({ db: this.#db, batcher: this.#batcher }, increment, current, now);
  }
}
