import { afterAll } from "vitest";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AdminService } from "../../gen/entitlements/v1/admin_service_pb.js";
import type { Administration } from "../../src/app/administration.ts";
import type { CatalogSource } from "../../src/app/catalog-source.ts";
import type { Entitlements } from "../../src/app/entitlements.ts";
import type { PlanChanges } from "../../src/app/plan-changes.ts";
import type { HealthMonitor } from "../../src/app/health-monitor.ts";
import { createUserTokenVerifier, type UserTokenOptions } from "../../src/auth/user-tokens.ts";
import type { Logger } from "../../src/platform/logger.ts";
import { Metrics } from "../../src/platform/metrics.ts";
import { listenAll, type Listener } from "../../src/transport/listeners.ts";
import type { TlsMaterial } from "../../src/transport/tls.ts";
import { TestClock } from "./clock.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";
import { bearer, composeTestService, SERVICE_TOKEN, userToken } from "./service.ts";
import { createEntitlementClient, type EntitlementClient } from "../../clients/node/src/index.ts";
import { changeListener } from "../../src/compose.ts";
import { createLogger } from "../../src/platform/logger.ts";

export type TestServer = TestDatabase & {
  readonly listener: Listener;
  readonly clock: TestClock;
  readonly entitlements: Entitlements;
  /** The catalog the service holds (refresh it after changing plans in the database). */
  readonly catalog: CatalogSource;
  readonly administration: Administration;
  readonly planChanges: PlanChanges;
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
    corsOrigins?: readonly string[];
  } = {},
): Promise<TestServer> {
  const metrics = new Metrics();
  const database = await createTestDatabase({
    statementTimeoutMs: options.pool?.statementTimeoutMs,
    interceptors: [metrics.queryInterceptor()],
  });
  metrics.observePool(database.pool);
  const clock = new TestClock(options.start ?? "2026-06-10T08:00:00Z");
  const composed = await composeTestService(database.pool, clock, {
    metrics,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.userTokens === undefined ? {} : { verifyUserToken: createUserTokenVerifier(options.userTokens) }),
  });
  // The change feed runs and hears the database as startService has it (watches, webhooks).
  await composed.feed.start();
  const notifications = changeListener(composed, database.sessionUrl, options.logger ?? createLogger("silent"));
  await notifications.start();
  const listener = await listenAll(composed.served, {
    host: "127.0.0.1",
    grpcPort: 0,
    httpPort: 0,
    maxInFlight: options.maxInFlight ?? 1000,
    shutdownTimeoutMs: 2000,
    tls: options.tls,
    corsOrigins: options.corsOrigins,
  });
  afterAll(async () => {
    composed.feed.close();
    await listener.close();
    await notifications.stop();
  });
  return {
    ...database,
    listener,
    clock,
    entitlements: composed.entitlements,
    catalog: composed.catalog,
    administration: composed.administration,
    planChanges: composed.planChanges,
    health: composed.health,
    httpUrl: `http://127.0.0.1:${listener.httpPort}`,
  };
}

/** An AdminService client of the server (Connect over HTTP/1.1) sending `token` as its bearer; none when undefined. */
export function adminClient(server: Pick<TestServer, "httpUrl">, token: string | undefined): Client<typeof AdminService> {
  return createClient(AdminService, createConnectTransport({ baseUrl: server.httpUrl, httpVersion: "1.1", interceptors: token === undefined ? [] : [bearer(token)] }));
}

export type AdminTestServer = {
  readonly server: TestServer;
  /** AdminService as the superadmin. */
  readonly admin: Client<typeof AdminService>;
  /** EntitlementService as a backend (the service token). */
  readonly entitlements: EntitlementClient;
};

/** A test server with a superadmin (granted from the command line), and clients for it and for a backend. */
export async function startAdminTestServer(superadmin = "root"): Promise<AdminTestServer> {
  const server = await startTestServer({ start: "2026-06-10T08:00:00Z" });
  await server.administration.setSuperadmin("cli", superadmin, true);
  return {
    server,
    admin: adminClient(server, await userToken(superadmin)),
    entitlements: createEntitlementClient({ baseUrl: server.httpUrl, token: SERVICE_TOKEN, protocol: "connect", timeoutMs: 30_000 }),
  };
}
