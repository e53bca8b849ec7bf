import { AsyncLocalStorage } from "node:async_hooks";
import type { Interceptor } from "@connectrpc/connect";
import { sql, type CommonQueryMethods, type DatabasePool } from "slonik";

/** The transaction of the current call, when its deadline put it in one of its own. */
type CallTransaction = {
  readonly db: CommonQueryMethods;
  /** Run once the transaction has committed. */
  readonly afterCommit: (() => void)[];
};

const callTransaction = new AsyncLocalStorage<CallTransaction>();

/** Whether the current call runs in a deadline-bound transaction of its own. */
export function inCallTransaction(): boolean {
  return callTransaction.getStore() !== undefined;
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

const GRPC_TIMEOUT_UNITS_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** The deadline a caller set, in ms from now: Connect's `connect-timeout-ms`, gRPC's `grpc-timeout`. */
export function requestTimeoutMs(headers: Headers): number | undefined {
  const connect = headers.get("connect-timeout-ms");
  if (connect !== null && /^[0-9]{1,10}$/.test(connect)) return Number(connect);
  const grpc = /^([0-9]{1,8})([HMSmun])$/.exec(headers.get("grpc-timeout") ?? "");
  return grpc === null ? undefined : Number(grpc[1]) * GRPC_TIMEOUT_UNITS_MS[grpc[2]!]!;
}

/**
 * Derives the statement timeout from the caller's deadline: a call whose deadline is shorter
 * than the pool's statement timeout runs its queries in one transaction with
 * `statement_timeout` set to what is left of the deadline, so the database gives up when the
 * caller does instead of holding a connection for the full statement timeout.
 */
export function deadlineInterceptor(pool: DatabasePool, statementTimeoutMs: number): Interceptor {
  return (next) => async (request) => {
    const timeoutMs = requestTimeoutMs(request.header);
    if (timeoutMs === undefined || timeoutMs >= statementTimeoutMs || callTransaction.getStore() !== undefined) {
      return next(request);
    }
    const deadline = Date.now() + timeoutMs;
    const afterCommit: (() => void)[] = [];
    // No retries: a retried transaction would run the call twice.
    const response = await pool.transaction(async (tx) => {
      const remaining = Math.max(1, Math.floor(deadline - Date.now()));
      await tx.query(sql.unsafe`select set_config('statement_timeout', ${String(remaining)}, true)`);
      return callTransaction.run({ db: tx, afterCommit }, () => next(request));
    }, 0);
    for (const work of afterCommit) work();
    return response;
  };
}
