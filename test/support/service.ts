import { createClient, createRouterTransport, type Client, type Interceptor } from "@connectrpc/connect";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { CatalogSource } from "../../src/app/catalog-source.ts";
import { Entitlements } from "../../src/app/entitlements.ts";
import { ReplicaCache } from "../../src/app/replica-cache.ts";
import { IncrementBatcher } from "../../src/db/increment-batcher.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { SignJWT } from "jose";
import type { DatabasePool } from "slonik";
import { Administration } from "../../src/app/administration.ts";
import type { Clock } from "../../src/domain/clock.ts";
import { deadlineInterceptor } from "../../src/db/call-transaction.ts";
import { HealthMonitor } from "../../src/app/health-monitor.ts";
import { Metrics } from "../../src/platform/metrics.ts";
import { routerOptions, routes, SERVED_SERVICES, serviceRegistrations, type RouteDependencies } from "../../src/server.ts";
import { createUserTokenVerifier } from "../../src/auth/user-tokens.ts";
import { TestClock } from "./clock.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";

export const SERVICE_TOKEN = "test-service-token-0123456789";
export const JWT_SECRET = "test-jwt-secret-0123456789-0123456789";

/** The server's route dependencies for tests: one service token and an HS256 JWT secret. */
export function testRouteDependencies(entitlements: Entitlements, pool: DatabasePool, clock: Clock): RouteDependencies {
  const logger = createLogger("silent");
  return {
    entitlements,
    health: new HealthMonitor(pool, SERVED_SERVICES.map((service) => service.typeName), logger),
    metrics: new Metrics(),
    databaseDeadlines: deadlineInterceptor(pool, 5000),
    administration: new Administration(pool, entitlements, clock),
    serviceTokens: [SERVICE_TOKEN],
    verifyUserToken: createUserTokenVerifier({ secret: JWT_SECRET, clockToleranceSeconds: 30 }),
    logger,
  };
}

/** A user JWT signed with the test secret, issued now unless `claims.iat` says otherwise. */
export async function userToken(
  sub: string,
  options: { expiresIn?: string | number; secret?: string; claims?: Record<string, unknown> } = {},
): Promise<string> {
  const claims = options.claims ?? {};
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(sub)
    .setExpirationTime(options.expiresIn ?? "10m");
  if (!("iat" in claims)) jwt = jwt.setIssuedAt();
  return jwt.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

/** A client interceptor that sends `authorization: Bearer <token>`. */
export function bearer(token: string): Interceptor {
  return withHeaders({ authorization: `Bearer ${token}` });
}

function withHeaders(headers: Record<string, string>): Interceptor {
  return (next) => (request) => {
    for (const [name, value] of Object.entries(headers)) request.header.set(name, value);
    return next(request);
  };
}

/** An EntitlementService client over the real routes, in memory, sending these headers. */
export function inMemoryClientWithHeaders(
  deps: RouteDependencies,
  headers: Record<string, string>,
): Client<typeof EntitlementService> {
  return createClient(
    EntitlementService,
    createRouterTransport(routes(serviceRegistrations(deps)), {
      router: routerOptions(deps, 1000),
      transport: { interceptors: [withHeaders(headers)] },
    }),
  );
}

/** An EntitlementService client over the real routes, in memory, sending `token` unless null. */
export function inMemoryClient(deps: RouteDependencies, token: string | null = SERVICE_TOKEN): Client<typeof EntitlementService> {
  return inMemoryClientWithHeaders(deps, token === null ? {} : { authorization: `Bearer ${token}` });
}

export type TestService = TestDatabase & {
  readonly clock: TestClock;
  readonly entitlements: Entitlements;
  /** An EntitlementService client that sends the service token. */
  readonly client: Client<typeof EntitlementService>;
  /** A client that sends `token`, or no credential at all for null. */
  clientWith(token: string | null): Client<typeof EntitlementService>;
};

/**
 * The service's routes on a fresh database, called in memory through createRouterTransport:
 * the same router, gates and error mapping as the real server, without a network.
 */
export async function createTestService(start = "2026-03-15T12:00:00Z"): Promise<TestService> {
  const database = await createTestDatabase();
  const clock = new TestClock(start);
  const logger = createLogger("silent");
  const catalog = await CatalogSource.load(database.pool, logger);
  const entitlements = new Entitlements(database.pool, catalog, clock, {
    // As served: usage cached per replica (evicted by this replica's increments), so every test of
    // the service also proves that a caller reads its own increments.
    usage: new ReplicaCache<bigint>({ ttlMs: 60_000, maxEntries: 10_000, enabled: true }),
    batcher: new IncrementBatcher(database.pool),
    coalesceReads: true,
  });
  const deps = testRouteDependencies(entitlements, database.pool, clock);
  const clientWith = (token: string | null) => inMemoryClient(deps, token);
  return { ...database, clock, entitlements, client: clientWith(SERVICE_TOKEN), clientWith };
}
