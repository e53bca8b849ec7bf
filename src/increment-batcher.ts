import type { DatabasePool } from "slonik";
import { consumeUsage, consumeUsageBatch, findUsed, type Consumption } from "./db/usage-counters.ts";
import { Coalescer } from "./coalescer.ts";

/** What became of one increment: granted or not, and the row's amount after its turn. */
export type Decision = { readonly granted: boolean; readonly used: bigint };

/**
 * Group commit for increments. Increments that arrive while earlier ones are being written wait
 * and then go together in one statement, committed on its own: their rows are locked (in key
 * order), each increment is decided in arrival order against the locked amount, the new amounts
 * are written, and the statement commits before any caller hears its answer. So throughput can
 * pass one commit per call, while every increment stays durable and exact, and a batch costs
 * one round trip to PostgreSQL whatever its size. A lone increment takes the one-row upsert.
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

  async #write(batch: readonly Consumption[]): Promise<Decision[]> {
    if (batch.length > 1) return consumeUsageBatch(this.#pool, batch);
    // A lone increment: the single-row upsert costs PostgreSQL half of a batch of one.
    const consumption = batch[0]!;
    const used = await consumeUsage(this.#pool, consumption);
    return [used === null ? { granted: false, used: await findUsed(this.#pool, consumption) } : { granted: true, used }];
  }
}
