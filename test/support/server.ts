import { afterAll } from "vitest";
import type { Administration } from "../../src/app/administration.ts";
import type { HealthMonitor } from "../../src/app/health-monitor.ts";
import { CatalogSource } from "../../src/app/catalog-source.ts";
import { Entitlements } from "../../src/app/entitlements.ts";
import { ReplicaCache } from "../../src/app/replica-cache.ts";
import { IncrementBatcher } from "../../src/db/increment-batcher.ts";
import { createLogger, type Logger } from "../../src/platform/logger.ts";
import { Metrics } from "../../src/platform/metrics.ts";
import { listenAll, type Listener, type TlsMaterial } from "../../src/server.ts";
import { createUserTokenVerifier, type UserTokenOptions } from "../../src/auth/user-tokens.ts";
import { TestClock } from "./clock.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";
import { testRouteDependencies } from "./service.ts";

export type TestServer = TestDatabase & {
  readonly listener: Listener;
  readonly clock: TestClock;
  readonly entitlements: Entitlements;
  /** The catalog the service holds (refresh it after changing plans in the database). */
  readonly catalog: CatalogSource;
  readonly administration: Administration;
  readonly health: HealthMonitor;
  /** http://127.0.0.1:<HTTP_PORT> */
  readonly httpUrl: string;
};

/** The real listeners on loopback ports over a fresh database, closed after the file. */
export async function startTestServer(
  options: {
    start?: string;
    userTokens?: UserTokenOptions;
    maxInFlight?: number;
    pool?: { statementTimeoutMs: number };
    tls?: TlsMaterial;
    logger?: Logger;
  } = {},
): Promise<TestServer> {
  const metrics = new Metrics();
  const database = await createTestDatabase({
    statementTimeoutMs: options.pool?.statementTimeoutMs,
    interceptors: [metrics.queryInterceptor()],
  });
  metrics.observePool(database.pool);
  const clock = new TestClock(options.start ?? "2026-06-10T08:00:00Z");
  const catalog = await CatalogSource.load(database.pool, createLogger("silent"));
  const entitlements = new Entitlements(database.pool, catalog, clock, {
    // As served: usage cached per replica (evicted by this replica's increments), so every test of
    // the service also proves that a caller reads its own increments.
    usage: new ReplicaCache<bigint>({ ttlMs: 60_000, maxEntries: 10_000, enabled: true }),
    batcher: new IncrementBatcher(database.pool),
    coalesceReads: true,
  });
  const deps = {
    ...testRouteDependencies(entitlements, database.pool, clock),
    metrics,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  };
  const listener = await listenAll(
    options.userTokens === undefined ? deps : { ...deps, verifyUserToken: createUserTokenVerifier(options.userTokens) },
    {
      host: "127.0.0.1",
      grpcPort: 0,
      httpPort: 0,
      maxInFlight: options.maxInFlight ?? 1000,
      shutdownTimeoutMs: 2000,
      tls: options.tls,
    },
  );
  afterAll(() => listener.close());
  return {
    ...database,
    listener,
    clock,
    entitlements,
    catalog,
    administration: deps.administration,
    health: deps.health,
    httpUrl: `http://127.0.0.1:${listener.httpPort}`,
  };
}
