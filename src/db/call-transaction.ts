import { AsyncLocalStorage } from "node:async_hooks";
import { sql, type CommonQueryMethods, type DatabasePool } from "slonik";
import { Permits } from "./acquire-timeout.ts";

/**
 * The transaction of a call with a deadline: begun by the call's first query (a call answered
 * from the caches never opens one), ended when the call ends.
 */
class CallTransaction {
  readonly #opener: CallTransactions;
  readonly deadline: number;
  #transaction: Promise<CommonQueryMethods> | undefined;
  #finished: Promise<unknown> | undefined;
  #end: ((failure: { readonly error: unknown } | undefined) => void) | undefined;
  #ended = false;
  /** Run once the transaction has committed. */
  readonly afterCommit: (() => void)[] = [];
  /** The call's queries, each waiting for the transaction to begin. */
  readonly db: CommonQueryMethods;

  constructor(opener: CallTransactions, deadline: number) {
    this.#opener = opener;
    this.deadline = deadline;
    const forward = <K extends keyof CommonQueryMethods>(name: K) =>
      (async (...args: unknown[]) => ((await this.#begin())[name] as (...a: unknown[]) => unknown)(...args)) as CommonQueryMethods[K];
    this.db = {
      any: forward("any"),
      anyFirst: forward("anyFirst"),
      exists: forward("exists"),
      many: forward("many"),
      manyFirst: forward("manyFirst"),
      maybeOne: forward("maybeOne"),
      maybeOneFirst: forward("maybeOneFirst"),
      one: forward("one"),
      oneFirst: forward("oneFirst"),
      query: forward("query"),
      record: forward("record"),
      stream: forward("stream"),
      transaction: forward("transaction"),
    };
  }

  #begin(): Promise<CommonQueryMethods> {
    // A query after the call ended would open a transaction that nothing ends.
    if (this.#ended && this.#transaction === undefined) return Promise.reject(new Error("the call has ended"));
    this.#transaction ??= new Promise((resolve, reject) => {
      this.#finished = this.#opener.open(async (tx) => {
        await boundStatements(tx, this.deadline);
        const failure = await new Promise<{ readonly error: unknown } | undefined>((end) => {
          this.#end = end;
          resolve(tx);
        });
        // Throwing rolls the transaction back.
        if (failure !== undefined) throw failure.error;
      });
      this.#finished.catch(reject);
    });
    return this.#transaction;
  }

  /** Commits what the call wrote (the call succeeded) and runs what waited for the commit. */
  async commit(): Promise<void> {
    this.#ended = true;
    if (this.#finished !== undefined) {
      this.#end?.(undefined);
      await this.#finished;
    }
    for (const work of this.afterCommit) work();
  }

  /** Rolls back what the call wrote (the call failed). */
  async rollback(error: unknown): Promise<void> {
    this.#ended = true;
    if (this.#finished === undefined) return;
    this.#end?.({ error });
    await this.#finished.catch(() => {});
  }
}

const callTransaction = new AsyncLocalStorage<CallTransaction>();

/** When the current call's caller gives up (ms since the epoch), if that bounds its database work. */
export function callDeadline(): number | undefined {
  return callTransaction.getStore()?.deadline;
}

/** Bounds the transaction's further statements by what is left until `deadline`. */
export async function boundStatements(tx: CommonQueryMethods, deadline: number): Promise<void> {
  const remaining = Math.max(1, Math.floor(deadline - Date.now()));
  await tx.query(sql.unsafe`select set_config('statement_timeout', ${String(remaining)}, true)`);
}

/** Where a call's queries go: its deadline-bound transaction, or the pool. */
export function queriesOf(pool: DatabasePool): CommonQueryMethods {
  return callTransaction.getStore()?.db ?? pool;
}

/** Runs `work` once what the call wrote is committed: at once, unless the call has a transaction. */
export function afterCallCommit(work: () => void): void {
  const transaction = callTransaction.getStore();
  if (transaction === undefined) work();
  else transaction.afterCommit.push(work);
}

/**
 * Where calls with deadlines get their transactions: the pool, with at most one connection fewer
 * open at once than it has. A call transaction holds its connection while the call waits for work
 * that takes connections of its own (group commit, shared reads, uncached standings): were every
 * connection held so, that work could never run and no call would end.
 */
export class CallTransactions {
  readonly #pool: DatabasePool;
  readonly #open: Permits;

  /** A call waits to open one for as long as the pool's callers wait for a connection. */
  constructor(pool: DatabasePool) {
    this.#pool = pool;
    // Slonik's default size when the pool was made without one.
    const { maxPoolSize = 10, connectionTimeout } = pool.configuration;
    this.#open = new Permits(Math.max(1, maxPoolSize - 1), connectionTimeout === "DISABLE_TIMEOUT" ? 2 ** 31 - 1 : connectionTimeout);
  }

  /** Runs `work` in a transaction, without retries (a retried transaction would run the call twice). */
  open(work: (tx: CommonQueryMethods) => Promise<void>): Promise<void> {
    return this.#open.hold(() => this.#pool.transaction(work, 0));
  }

  /**
   * Runs `work` (a call whose caller gives up at `deadline`) with its queries in one transaction
   * whose statements are bounded by what is left of the deadline: the database gives up when the
   * caller does. The transaction begins with the first query, so work answered from the caches
   * costs the database nothing; it commits when `work` succeeds and rolls back when it fails.
   */
  async run<T>(deadline: number, work: () => Promise<T>): Promise<T> {
    const transaction = new CallTransaction(this, deadline);
    let result: T;
    try {
      result = await callTransaction.run(transaction, work);
    } catch (error) {
      await transaction.rollback(error);
      throw error;
    }
    await transaction.commit();
    return result;
  }
}

/** Whether the current call already runs in a call transaction. */
export function inCallTransaction(): boolean {
  return callTransaction.getStore() !== undefined;
}
