import type { CommonQueryMethods, DatabasePool } from "slonik";
import { consumeUsage, consumeUsageBatch, findUsed, type Consumption } from "./db/usage-counters.ts";
import { Coalescer } from "./coalescer.ts";
import { boundStatements } from "./deadlines.ts";

/** An increment and when its caller gives up (ms since the epoch), if that bounds its work. */
type Submitted = { readonly consumption: Consumption; readonly deadline: number | undefined };

/** What became of one increment: granted or not, and the row's amount after its turn. */
export type Decision = { readonly granted: boolean; readonly used: bigint };

/**
 * Group commit for increments. Increments that arrive while earlier ones are being written wait
 * and then go together in one statement, committed on its own: their rows are locked (in key
 * order), each increment is decided in arrival order against the locked amount, the new amounts
 * are written, and the statement commits before any caller hears its answer. So throughput can
 * pass one commit per call, while every increment stays durable and exact, and a batch costs
 * one round trip to PostgreSQL whatever its size. A lone increment takes the one-row upsert.
 * When every caller in a batch has a deadline, the batch runs in a transaction whose statements
 * end with the last of them, so the database gives up when its callers do.
 */
export class IncrementBatcher {
  readonly #pool: DatabasePool;
  readonly #coalescer: Coalescer<Submitted, Decision>;

  constructor(pool: DatabasePool, options: { maxBatch?: number; maxConcurrentBatches?: number } = {}) {
    this.#pool = pool;
    this.#coalescer = new Coalescer((batch) => this.#write(batch), {
      maxBatch: options.maxBatch,
      maxConcurrent: options.maxConcurrentBatches,
    });
  }

  submit(consumption: Consumption, deadline?: number): Promise<Decision> {
    return this.#coalescer.submit({ consumption, deadline });
  }

  async #write(batch: readonly Submitted[]): Promise<Decision[]> {
    const consumptions = batch.map((submitted) => submitted.consumption);
    const deadlines = batch.map((submitted) => submitted.deadline);
    if (!deadlines.every((deadline) => deadline !== undefined)) return decide(this.#pool, consumptions);
    const last = Math.max(...deadlines);
    // No retries: a retried transaction would count the batch twice.
    return this.#pool.transaction(async (tx) => {
      await boundStatements(tx, last);
      return decide(tx, consumptions);
    }, 0);
  }
}

async function decide(db: CommonQueryMethods, consumptions: readonly Consumption[]): Promise<Decision[]> {
  if (consumptions.length > 1) return consumeUsageBatch(db, consumptions);
  // A lone increment: the single-row upsert costs PostgreSQL half of a batch of one.
  const consumption = consumptions[0]!;
  const used = await consumeUsage(db, consumption);
  return [used === null ? { granted: false, used: await findUsed(db, consumption) } : { granted: true, used }];
}
