import type { DatabasePool } from "slonik";
import { lockAccount } from "../db/accounts.ts";
import { findDueLapses, markLapseAnnounced, type Lapse } from "../db/lapses.ts";
import type { Clock } from "../domain/clock.ts";
import type { EntitlementEventType } from "../domain/entitlement-events.ts";
import { announceChange } from "./change-events.ts";
import type { Entitlements } from "./entitlements.ts";

/** Lapses announced per sweep; the next sweep takes the rest. */
const LAPSE_BATCH = 200;

const EVENT_OF_LAPSE: Record<Lapse["kind"], EntitlementEventType> = {
  trial: "entitlements.trial_ended",
  override: "entitlements.override_expired",
  grant: "entitlements.grant_expired",
  subscription: "entitlements.subscription_expired",
};

/** What the event of a lapse says besides its type. */
function detailsOf(lapse: Lapse): Record<string, string> {
  const at = lapse.lapsesAt.toISOString();
  switch (lapse.kind) {
    case "trial":
      return { plan_code: lapse.target, effective_at: at };
    case "override":
      return { [lapse.detail === "feature" ? "feature" : "metric"]: lapse.target, effective_at: at };
    case "grant":
      return { grant_id: lapse.target, metric: lapse.detail, effective_at: at };
    case "subscription":
      return { plan_code: lapse.detail, effective_at: at };
  }
}

/**
 * Writes the change feed event of each trial, override, grant and subscription that ended at its
 * own time. Answers weigh expiries as they come (they never wait for this); the feed hears of
 * them here, once each, in the account's order of changes.
 */
export class Lapses {
  readonly #pool: DatabasePool;
  readonly #entitlements: Entitlements;
  readonly #clock: Clock;

  constructor(pool: DatabasePool, entitlements: Entitlements, clock: Clock) {
    this.#pool = pool;
    this.#entitlements = entitlements;
    this.#clock = clock;
  }

  /** Announces a batch of due lapses; returns how many events it wrote. */
  async announceDue(): Promise<number> {
    const at = this.#clock.now();
    let announced = 0;
    for (const lapse of await findDueLapses(this.#pool, at, LAPSE_BATCH)) {
      const wrote = await this.#pool.transaction(async (tx) => {
        if ((await lockAccount(tx, lapse.userId)) === null || !(await markLapseAnnounced(tx, lapse))) return false;
        await announceChange(tx, this.#entitlements, lapse.userId, { type: EVENT_OF_LAPSE[lapse.kind], at, details: detailsOf(lapse) });
        return true;
      });
      if (wrote) {
        this.#entitlements.forget(lapse.userId);
        announced++;
      }
    }
    return announced;
  }
}
