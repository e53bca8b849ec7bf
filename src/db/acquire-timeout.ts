import type { DatabasePool } from "slonik";

/** No pool connection came free within the bound: the database is busy, worth a retry. */
export class ConnectionAcquireTimeoutError extends Error {
  override name = "ConnectionAcquireTimeoutError";

  constructor(timeoutMs: number) {
    super(`no database connection came free within ${timeoutMs} ms`);
  }
}

/** The pool's methods that each hold one connection while they run. */
const CONNECTION_METHODS = new Set<PropertyKey>([
  "any", "anyFirst", "exists", "many", "manyFirst", "maybeOne", "maybeOneFirst", "one", "oneFirst",
  "query", "stream", "transaction", "connect",
]);

/**
 * The pool with a bound on waiting for a connection, which Slonik's own queue lacks: each
 * method holds one of `size` permits (the pool's size) while it runs, and a caller that gets
 * none within `timeoutMs` fails with ConnectionAcquireTimeoutError instead of waiting for as long
 * as the calls ahead of it take. Calls inside a transaction or `connect` use its connection, not
 * the pool, so they take no permit.
 */
export function withAcquireTimeout(pool: DatabasePool, size: number, timeoutMs: number): DatabasePool {
  let free = size;
  const waiting: (() => void)[] = [];
  const release = () => {
    const next = waiting.shift();
    if (next === undefined) free += 1;
    else next();
  };
  const acquire = (): Promise<void> | undefined => {
    if (free > 0) {
      free -= 1;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      const granted = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiting.splice(waiting.indexOf(granted), 1);
        reject(new ConnectionAcquireTimeoutError(timeoutMs));
      }, timeoutMs);
      waiting.push(granted);
    });
  };
  const held = async <T>(work: () => Promise<T>): Promise<T> => {
    const waited = acquire();
    if (waited !== undefined) await waited;
    try {
      return await work();
    } finally {
      release();
    }
  };
  // Each method is wrapped once, not on every access: `pool.one` is on every call's path.
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(pool, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (property === "state") {
        // Callers waiting here are the pool's waiting clients too.
        return () => {
          const state = target.state();
          return { ...state, waitingClients: state.waitingClients + waiting.length };
        };
      }
      if (typeof value !== "function" || !CONNECTION_METHODS.has(property)) return value;
      let wrapper = wrapped.get(property);
      if (wrapper === undefined) {
        wrapper = (...args: unknown[]) => held(() => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
        wrapped.set(property, wrapper);
      }
      return wrapper;
    },
  });
}
