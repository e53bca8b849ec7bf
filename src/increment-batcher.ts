import type { DatabasePool } from "slonik";
import {
  consumeUsage,
  ensureUsageRows,
  findUsed,
  lockUsageRows,
  setUsageRows,
  type Consumption,
  type UsageRowKey,
} from "./db/usage-counters.ts";
import { applyAmount, fits } from "./domain/quota.ts";

/** What became of one increment: granted or not, and the row's amount after its turn. */
export type Decision = { readonly granted: boolean; readonly used: bigint };

type Pending = {
  readonly consumption: Consumption;
  readonly resolve: (decision: Decision) => void;
  readonly reject: (error: unknown) => void;
};

const rowKey = (row: UsageRowKey) => `${row.userId}\u0000${row.metric}\u0000${row.periodStart.getTime()}`;

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
  readonly #maxBatch: number;
  readonly #maxConcurrentBatches: number;
  #queue: Pending[] = [];
  #running = 0;

  constructor(pool: DatabasePool, options: { maxBatch?: number; maxConcurrentBatches?: number } = {}) {
    this.#pool = pool;
    this.#maxBatch = options.maxBatch ?? 256;
    this.#maxConcurrentBatches = options.maxConcurrentBatches ?? 2;
  }

  submit(consumption: Consumption): Promise<Decision> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ consumption, resolve, reject });
      if (this.#running < this.#maxConcurrentBatches) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running++;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        await this.#write(batch).then(
          (decisions) => batch.forEach((pending, index) => pending.resolve(decisions[index]!)),
          (error: unknown) => batch.forEach((pending) => pending.reject(error)),
        );
      }
    } finally {
      this.#running--;
    }
  }

  async #write(batch: readonly Pending[]): Promise<Decision[]> {
    if (batch.length === 1) {
      const { consumption } = batch[0]!;
      const used = await consumeUsage(this.#pool, consumption);
      return [used === null ? { granted: false, used: await findUsed(this.#pool, consumption) } : { granted: true, used }];
    }
    const rows = batch.map((pending) => pending.consumption);
    const now = rows[0]!.now;
    return this.#pool.transaction(async (tx) => {
      await ensureUsageRows(tx, rows, now);
      const amounts = new Map((await lockUsageRows(tx, rows)).map((row) => [rowKey(row), row.used]));
      const decisions = rows.map((row) => {
        const key = rowKey(row);
        const used = amounts.get(key) ?? 0n;
        if (!fits(used, row.amount, row.ceiling)) return { granted: false, used };
        const next = applyAmount(used, row.amount);
        amounts.set(key, next);
        return { granted: true, used: next };
      });
      const distinct = new Map(rows.map((row) => [rowKey(row), row]));
      await setUsageRows(
        tx,
        [...distinct].map(([key, row]) => ({ userId: row.userId, metric: row.metric, periodStart: row.periodStart, used: amounts.get(key)! })),
        now,
      );
      return decisions;
    }, 0);
  }
}
