import type { DatabasePool } from "slonik";
import {
  consumeUsage,
  ensureUsageRows,
  findUsed,
  lockUsageRows,
  setUsageRows,
  usageRowId,
  type Consumption,
} from "./db/usage-counters.ts";
import { Coalescer } from "./coalescer.ts";
import { applyAmount, fits } from "./domain/quota.ts";

/** What became of one increment: granted or not, and the row's amount after its turn. */
export type Decision = { readonly granted: boolean; readonly used: bigint };


/**
 * Group commit for increments. Increments that arrive while earlier ones are being written wait
 * and then go together in one transaction: their rows are locked (in key order), each increment
 * is decided in arrival order against the locked amount, the new amounts are written, and the
 * transaction commits before any caller hears its answer. So throughput can pass one commit per
 * call, while every increment stays durable and exact. A lone increment takes the one-statement
 * path.
 */
export class IncrementBatcher {
  readonly #pool: DatabasePool;
  readonly #coalescer: Coalescer<Consumption, Decision>;

  constructor(pool: DatabasePool, options: { maxBatch?: number; maxConcurrentBatches?: number } = {}) {
    this.#pool = pool;
    this.#coalescer = new Coalescer((batch) => this.#write(batch), {
      maxBatch: options.maxBatch,
      maxConcurrent: options.maxConcurrentBatches,
    });
  }

  submit(consumption: Consumption): Promise<Decision> {
    return this.#coalescer.submit(consumption);
  }

  async #write(rows: readonly Consumption[]): Promise<Decision[]> {
    if (rows.length === 1) {
      const consumption = rows[0]!;
      const used = await consumeUsage(this.#pool, consumption);
      return [used === null ? { granted: false, used: await findUsed(this.#pool, consumption) } : { granted: true, used }];
    }
    const now = rows[0]!.now;
    return this.#pool.transaction(async (tx) => {
      await ensureUsageRows(tx, rows, now);
      const amounts = new Map((await lockUsageRows(tx, rows)).map((row) => [usageRowId(row), row.used]));
      const decisions = rows.map((row) => {
        const key = usageRowId(row);
        const used = amounts.get(key) ?? 0n;
        if (!fits(used, row.amount, row.ceiling)) return { granted: false, used };
        const next = applyAmount(used, row.amount);
        amounts.set(key, next);
        return { granted: true, used: next };
      });
      const distinct = new Map(rows.map((row) => [usageRowId(row), row]));
      await setUsageRows(
        tx,
        [...distinct].map(([key, row]) => ({ userId: row.userId, metric: row.metric, periodStart: row.periodStart, used: amounts.get(key)! })),
        now,
      );
      return decisions;
    }, 0);
  }
}
