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
 * `count` permits handed out in arrival order; a caller that gets none within `timeoutMs` fails
 * with ConnectionAcquireTimeoutError.
 */
export class Permits {
  readonly #timeoutMs: number;
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(count: number, timeoutMs: number) {
    this.#free = count;
    this.#timeoutMs = timeoutMs;
  }

  /** Callers waiting for a permit. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `work` holding a permit, released when it settles. */
  async hold<T>(work: () => Promise<T>): Promise<T> {
    const waited = this.#acquire();
    if (waited !== undefined) await waited;
    try {
      return await work();
    } finally {
      this.#release();
    }
  }

  #acquire(): Promise<void> | undefined {
    if (this.#free > 0) {
      this.#free -= 1;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      const granted = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiting.splice(this.#waiting.indexOf(granted), 1);
        reject(new ConnectionAcquireTimeoutError(this.#timeoutMs));
      }, this.#timeoutMs);
      this.#waiting.push(granted);
    });
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next === undefined) this.#free += 1;
    else next();
  }
}

/**
 * The pool with a bound on waiting for a connection, which Slonik's own queue lacks: each
 * method holds one of `size` permits (the pool's size) while it runs, and a caller that gets
 * none within `timeoutMs` fails with ConnectionAcquireTimeoutError instead of waiting for as long
 * as the calls ahead of it take. Calls inside a transaction or `connect` use its connection, not
 * the pool, so they take no permit.
 */
export function withAcquireTimeout(pool: DatabasePool, size: number, timeoutMs: number): DatabasePool {
  const permits = new Permits(size, timeoutMs);
  // Each method is wrapped once, not on every access: `pool.one` is on every call's path.
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(pool, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (property === "state") {
        // Callers waiting here are the pool's waiting clients too.
        return () => {
          const state = target.state();
          return { ...state, waitingClients: state.waitingClients + permits.waiting };
        };
      }
      if (typeof value !== "function" || !CONNECTION_METHODS.has(property)) return value;
      let wrapper = wrapped.get(property);
      if (wrapper === undefined) {
        wrapper = (...args: unknown[]) => permits.hold(() => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
        wrapped.set(property, wrapper);
      }
      return wrapper;
    },
  });
}
