import { AsyncResource } from "node:async_hooks";
import type { DatabasePool } from "slonik";
import { lockAccount } from "../db/accounts.ts";
import { lockAlertState, markAlerted } from "../db/usage-alerts.ts";
import type { UsageRowKey } from "../db/usage-counters.ts";
import { alertThresholdsOf, isGauge } from "../domain/catalog.ts";
import { thresholdsReached, type QuotaState } from "../domain/quota.ts";
import type { Logger } from "../platform/logger.ts";
import { announceChange } from "./change-events.ts";
import type { Entitlements } from "./entitlements.ts";

/** Users whose announced thresholds this replica remembers; forgotten all at once beyond it. */
const REMEMBERED_USERS = 100_000;

/**
 * usage.threshold_crossed: after a write that raised usage commits, a row that reached a
 * threshold of its metric not yet announced gets, in a transaction of its own under the account's
 * lock, one event per threshold crossed, and the row records how far it has announced (once per
 * period: a period is a row). Never on the write's path: the write has answered by then. A crash
 * before the announcement leaves the row unannounced, and the row's next write announces it.
 */
export class UsageAlerts {
  readonly #pool: DatabasePool;
  readonly #entitlements: Entitlements;
  readonly #logger: Logger;
  /** By user, the highest threshold each row is known to have announced: most writes need no query. */
  readonly #announced = new Map<string, Map<string, number>>();
  /** Rows being announced: a write meanwhile only asks for another look. */
  readonly #running = new Map<string, boolean>();
  /** Runs work outside the context of the call that asked for it (its transaction, its deadline). */
  readonly #detached = AsyncResource.bind((work: () => Promise<void>) => void work());

  constructor(pool: DatabasePool, entitlements: Entitlements, logger: Logger) {
    this.#pool = pool;
    this.#entitlements = entitlements;
    this.#logger = logger;
  }

  /** The account changed (a usage reset may have set its rows back): ask the database next time. */
  forgotten(userId: string): void {
    this.#announced.delete(userId);
  }

  /** A committed write left the user's rows at `quotas`. */
  raised(userId: string, quotas: readonly QuotaState[]): void {
    for (const quota of quotas) {
      const metric = this.#entitlements.catalog.metric(quota.metric);
      if (metric === undefined || isGauge(metric) || quota.period === null) continue;
      const reached = thresholdsReached(alertThresholdsOf(metric), quota.used, quota.limit).at(-1);
      // Most writes reach no threshold: nothing more to work out for them.
      if (reached === undefined) continue;
      const row = { userId, metric: metric.code, periodStart: quota.period.start };
      const id = `${userId}\u0000${metric.code}\u0000${row.periodStart.getTime()}`;
      if (reached <= (this.#announced.get(userId)?.get(id) ?? 0)) continue;
      if (this.#running.has(id)) {
        this.#running.set(id, true);
        continue;
      }
      this.#running.set(id, false);
      this.#detached(() => this.#announce(id, row, quota.limit!));
    }
  }

  async #announce(id: string, row: UsageRowKey, limit: bigint): Promise<void> {
    try {
      do {
        this.#running.set(id, false);
        const { highest, wrote } = await this.#pool.transaction(async (tx) => {
          const nothing = { highest: 0, wrote: false };
          if ((await lockAccount(tx, row.userId)) === null) return nothing;
          const state = await lockAlertState(tx, row);
          const metric = this.#entitlements.catalog.metric(row.metric);
          if (state === null || metric === undefined) return nothing;
          const crossed = thresholdsReached(alertThresholdsOf(metric), state.used, limit).filter((threshold) => threshold > state.alertedPercent);
          const at = this.#entitlements.now();
          for (const threshold of crossed) {
            const details = { metric: row.metric, threshold: String(threshold), used: String(state.used), limit: String(limit), period_start: row.periodStart.toISOString() };
            await announceChange(tx, this.#entitlements, row.userId, { type: "usage.threshold_crossed", at, details });
          }
          if (crossed.length > 0) await markAlerted(tx, row, crossed.at(-1)!);
          return { highest: Math.max(state.alertedPercent, crossed.at(-1) ?? 0), wrote: crossed.length > 0 };
        });
        // The events raised the account's revision: its cached standing is read again.
        if (wrote) this.#entitlements.forget(row.userId);
        if (this.#announced.size >= REMEMBERED_USERS) this.#announced.clear();
        let rows = this.#announced.get(row.userId);
        if (rows === undefined) this.#announced.set(row.userId, (rows = new Map()));
        rows.set(id, highest);
      } while (this.#running.get(id) === true);
    } catch (error) {
      this.#logger.warn({ err: error, user_id: row.userId, metric: row.metric }, "announcing a usage threshold failed; the row's next write tries again");
    } finally {
      this.#running.delete(id);
    }
  }
}
