import type { Interceptor } from "@connectrpc/connect";
import { inCallTransaction, type CallTransactions } from "../../db/call-transaction.ts";
import { callDeadlineKey } from "../call-lifecycle.ts";

/**
 * Bounds a call's database work by its caller's deadline (set by the call lifecycle of every
 * transport): a call whose deadline comes before the pool's statement timeout runs its queries
 * in a call transaction, so the database gives up when the caller does instead of holding a
 * connection for the full statement timeout.
 */
export function deadlineInterceptor(transactions: CallTransactions, statementTimeoutMs: number): Interceptor {
  return (next) => (request) => {
    const deadline = request.contextValues.get(callDeadlineKey);
    if (deadline === undefined || deadline - Date.now() >= statementTimeoutMs || inCallTransaction()) {
      return next(request);
    }
    return transactions.run(deadline, () => next(request));
  };
}
