import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { DatabasePool, Interceptor } from "slonik";

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Prometheus metrics of the service, served at /metrics. */
export class Metrics {
  readonly registry = new Registry();

  readonly rpcRequests = new Counter({
    name: "rpc_server_requests_total",
    help: "RPCs answered, by service, method and code (the /v1 endpoints count as their RPC).",
    labelNames: ["service", "method", "code"] as const,
    registers: [this.registry],
  });

  readonly rpcDuration = new Histogram({
    name: "rpc_server_duration_seconds",
    help: "Time to answer an RPC, by service, method and code.",
    labelNames: ["service", "method", "code"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly queryDuration = new Histogram({
    name: "db_query_duration_seconds",
    help: "Time PostgreSQL took to answer a query, by outcome.",
    labelNames: ["outcome"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly quotaDenials = new Counter({
    name: "quota_denials_total",
    help: "Usage refused for quota: IncrementUsage refusals and CheckQuota answers of not allowed.",
    labelNames: ["metric", "rpc"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** A Slonik interceptor that times every query. */
  queryInterceptor(): Interceptor {
    const observe = (queryInputTime: bigint | number, outcome: "ok" | "error") => {
      const started = typeof queryInputTime === "bigint" ? queryInputTime : BigInt(Math.round(queryInputTime));
      this.queryDuration.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    return {
      name: "metrics",
      afterQueryExecution: (context) => {
        observe(context.queryInputTime, "ok");
        return null;
      },
      queryExecutionError: (context) => {
        observe(context.queryInputTime, "error");
        return null;
      },
    };
  }

  /** Reports the pool's connections in use, idle and callers waiting for one, at each scrape. */
  observePool(pool: DatabasePool): void {
    new Gauge({
      name: "db_pool_connections",
      help: "Connections of the database pool, by state (in_use, idle), and callers waiting (waiting).",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        const state = pool.state();
        this.set({ state: "in_use" }, state.acquiredConnections);
        this.set({ state: "idle" }, state.idleConnections);
        this.set({ state: "waiting" }, state.waitingClients);
      },
    });
  }
}
