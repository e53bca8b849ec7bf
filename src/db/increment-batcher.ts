import type { CommonQueryMethods, DatabasePool } from "slonik";
import { consumeUsageOnce, consumeUsageOnceBatch, type KeyedConsumption, type KeyedOutcome } from "./idempotency-keys.ts";
import { consumeUsageBatch, decideConsumption, type Consumption, type ConsumptionDecision } from "./usage-counters.ts";
import { Coalescer } from "./coalescer.ts";
import { boundStatements } from "./call-transaction.ts";
import { consumeItemsBatch, type ItemsConsumption, type ItemsOutcome } from "./consumptions.ts";
import { settleReservations, type Settlement, type SettlementRequest } from "./reservations.ts";

/** A piece of work and when its caller gives up (ms since the epoch), if that bounds its work. */
type Submitted<T> = { readonly work: T; readonly deadline: number | undefined };

type BatcherOptions = { maxBatch?: number; maxConcurrentBatches?: number };

/**
 * Group commit for increments. Increments that arrive while earlier ones are being written wait
 * and then go together in one statement, committed on its own: their rows are locked (in key
 * order), each increment is decided in arrival order against the locked amount, the new amounts
 * are written, and the statement commits before any caller hears its answer. So throughput can
 * pass one commit per call, while every increment stays durable and exact, and a batch costs
 * one round trip to PostgreSQL whatever its size. A lone increment takes the one-row upsert.
 * Increments under idempotency keys are batched apart, each decided in its batch exactly as it
 * would be alone (claim, count or replay, record), ConsumeUsage and ReserveUsage calls apart
 * again, each all of its items or none, and commits and releases of reservations apart again.
 * When every caller in a batch has a deadline,
 * the batch runs in a transaction whose statements end with the last of them, so the database
 * gives up when its callers do.
 */
export class IncrementBatcher {
  readonly #pool: DatabasePool;
  readonly #plain: Coalescer<Submitted<Consumption>, ConsumptionDecision>;
  readonly #keyed: Coalescer<Submitted<KeyedConsumption>, KeyedOutcome>;
  readonly #items: Coalescer<Submitted<ItemsConsumption>, ItemsOutcome>;
  readonly #settlements: Coalescer<Submitted<SettlementRequest>, Settlement>;

  constructor(pool: DatabasePool, options: BatcherOptions = {}) {
    this.#pool = pool;
    const coalescerOptions = { maxBatch: options.maxBatch, maxConcurrent: options.maxConcurrentBatches };
    this.#plain = new Coalescer((batch) => this.#write(batch, decide), coalescerOptions);
    this.#keyed = new Coalescer((batch) => this.#write(batch, decideKeyed), coalescerOptions);
    this.#items = new Coalescer((batch) => this.#write(batch, consumeItemsBatch), coalescerOptions);
    this.#settlements = new Coalescer((batch) => this.#write(batch, settleReservations), coalescerOptions);
  }

  submit(consumption: Consumption, deadline?: number): Promise<ConsumptionDecision> {
    return this.#plain.submit({ work: consumption, deadline });
  }

  submitKeyed(consumption: KeyedConsumption, deadline?: number): Promise<KeyedOutcome> {
    return this.#keyed.submit({ work: consumption, deadline });
  }

  /** A ConsumeUsage or ReserveUsage call (all of its items or none), batched with the others that arrive together. */
  submitItems(consumption: ItemsConsumption, deadline?: number): Promise<ItemsOutcome> {
    return this.#items.submit({ work: consumption, deadline });
  }

  /** A commit or release of a reservation, batched with the others that arrive together. */
  submitSettlement(request: SettlementRequest, deadline?: number): Promise<Settlement> {
    return this.#settlements.submit({ work: request, deadline });
  }

  async #write<T, O>(batch: readonly Submitted<T>[], run: (db: CommonQueryMethods, works: readonly T[]) => Promise<O[]>): Promise<O[]> {
    const works = batch.map((submitted) => submitted.work);
    const deadlines = batch.map((submitted) => submitted.deadline);
    if (!deadlines.every((deadline) => deadline !== undefined)) return run(this.#pool, works);
    const last = Math.max(...deadlines);
    // No retries: a retried transaction would count the batch twice.
    return this.#pool.transaction(async (tx) => {
      await boundStatements(tx, last);
      return run(tx, works);
    }, 0);
  }
}

async function decide(db: CommonQueryMethods, consumptions: readonly Consumption[]): Promise<ConsumptionDecision[]> {
  // A lone increment: the single-row upsert costs PostgreSQL half of a batch of one.
  return consumptions.length > 1 ? consumeUsageBatch(db, consumptions) : [await decideConsumption(db, consumptions[0]!)];
}

async function decideKeyed(db: CommonQueryMethods, consumptions: readonly KeyedConsumption[]): Promise<KeyedOutcome[]> {
  return consumptions.length > 1 ? consumeUsageOnceBatch(db, consumptions) : [await consumeUsageOnce(db, consumptions[0]!)];
}
