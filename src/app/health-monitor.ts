import { EventEmitter, on } from "node:events";
import { sql, type CommonQueryMethods } from "slonik";
import type { Logger } from "../platform/logger.ts";
import { OutageLog } from "../platform/outage-log.ts";

/** Whether the service can do its work: it needs its database, and it stops at shutdown. */
export type Serving = "serving" | "not_serving";

const PROBE_INTERVAL_MS = 2000;

/**
 * The health of the process: serving while the database answers and shutdown has not begun.
 * Probes the database in the background and tells watchers of every change.
 */
export class HealthMonitor {
  readonly services: readonly string[];
  #databaseReachable = true;
  #shuttingDown = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #events = new EventEmitter();
  readonly #db: CommonQueryMethods;
  readonly #logger: Logger;
  readonly #outages: OutageLog;

  /** `services`: the names health answers for, besides "" (the whole server). */
  constructor(db: CommonQueryMethods, services: readonly string[], logger: Logger) {
    this.#db = db;
    this.services = ["", ...services];
    this.#logger = logger;
    this.#outages = new OutageLog(logger, { down: "database unreachable", stillDown: "database still unreachable", back: "database reachable again" });
    this.#events.setMaxListeners(0);
  }

  get status(): Serving {
    return this.#databaseReachable && !this.#shuttingDown ? "serving" : "not_serving";
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  async probe(): Promise<void> {
    const reachable = await this.#db.query(sql.unsafe`select 1`).then(
      () => {
        this.#outages.up();
        return true;
      },
      (error: unknown) => {
        this.#outages.down(error);
        return false;
      },
    );
    this.#set(() => (this.#databaseReachable = reachable));
  }

  startProbing(intervalMs = PROBE_INTERVAL_MS): void {
    this.#timer ??= setInterval(() => void this.probe(), intervalMs).unref();
  }

  /** Turns every status to not serving for good, and ends every watch. */
  shutdown(): void {
    clearInterval(this.#timer);
    this.#set(() => (this.#shuttingDown = true));
    this.#events.emit("shutdown");
  }

  /** The status now, then each change, until shutdown or `signal`. */
  async *watch(signal: AbortSignal): AsyncGenerator<Serving> {
    let last = this.status;
    yield last;
    if (this.#shuttingDown) return;
    const stop = new AbortController();
    const onShutdown = () => stop.abort();
    this.#events.once("shutdown", onShutdown);
    signal.addEventListener("abort", onShutdown, { once: true });
    try {
      for await (const [status] of on(this.#events, "change", { signal: stop.signal }) as AsyncIterable<[Serving]>) {
        if (status !== last) yield (last = status);
      }
    } catch (error) {
      if ((error as Error).name !== "AbortError") throw error;
    } finally {
      this.#events.off("shutdown", onShutdown);
      signal.removeEventListener("abort", onShutdown);
    }
    if (this.#shuttingDown && last !== "not_serving") yield "not_serving";
  }

  #set(change: () => void): void {
    const before = this.status;
    change();
    if (this.status !== before) {
      this.#logger.info({ status: this.status }, "health changed");
      this.#events.emit("change", this.status);
    }
  }
}
