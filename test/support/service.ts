import { createClient, createRouterTransport, type Client, type Interceptor } from "@connectrpc/connect";
import { SignJWT } from "jose";
import type { DatabasePool } from "slonik";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import type { CatalogSource } from "../../src/app/catalog-source.ts";
import type { Entitlements } from "../../src/app/entitlements.ts";
import type { PlanChanges } from "../../src/app/plan-changes.ts";
import type { UserTokenVerifier } from "../../src/auth/user-tokens.ts";
import { composeService, type ComposedService, type ServiceSettings } from "../../src/compose.ts";
import { loadConfig } from "../../src/config.ts";
import type { Clock } from "../../src/domain/clock.ts";
import { createLogger, type Logger } from "../../src/platform/logger.ts";
import type { Metrics } from "../../src/platform/metrics.ts";
import type { ServedCalls } from "../../src/transport/listeners.ts";
import { routerOptions, routes } from "../../src/transport/routes.ts";
import { TestClock } from "./clock.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";

export const SERVICE_TOKEN = "test-service-token-0123456789";
export const JWT_SECRET = "test-jwt-secret-0123456789-0123456789";

/**
 * The settings tests compose the service with: one service token, an HS256 JWT secret, usage
 * cached as served (evicted by this replica's increments, so every test of the service also
 * proves that a caller reads its own increments), and no standing cache, which only change
 * notifications would keep fresh.
 */
export const TEST_SETTINGS: ServiceSettings = loadConfig({
  SERVICE_TOKENS: SERVICE_TOKEN,
  JWT_SECRET,
  USAGE_CACHE_TTL_MS: "60000",
  USAGE_CACHE_SIZE: "10000",
  STANDING_CACHE_SIZE: "0",
  DATABASE_STATEMENT_TIMEOUT_MS: "5000",
});

/** The service composed as startService composes it, over `pool`, with the test settings. */
export function composeTestService(
  pool: DatabasePool,
  clock: Clock,
  parts: { catalog?: CatalogSource; metrics?: Metrics; logger?: Logger; verifyUserToken?: UserTokenVerifier } = {},
): Promise<ComposedService> {
  return composeService(TEST_SETTINGS, pool, { ...parts, clock, logger: parts.logger ?? createLogger("silent") });
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
export function inMemoryClientWithHeaders(served: ServedCalls, headers: Record<string, string>): Client<typeof EntitlementService> {
  return createClient(
    EntitlementService,
    createRouterTransport(routes(served.registrations), {
      router: routerOptions(served, 1000),
      transport: { interceptors: [withHeaders(headers)] },
    }),
  );
}

/** An EntitlementService client over the real routes, in memory, sending `token` unless null. */
export function inMemoryClient(served: ServedCalls, token: string | null = SERVICE_TOKEN): Client<typeof EntitlementService> {
  return inMemoryClientWithHeaders(served, token === null ? {} : { authorization: `Bearer ${token}` });
}

export type TestService = TestDatabase & {
  readonly clock: TestClock;
  readonly entitlements: Entitlements;
  readonly planChanges: PlanChanges;
  /** The catalog the service holds (refresh it after changing the catalog in the database). */
  readonly catalog: CatalogSource;
  /** What the service serves, for in-memory clients of its own. */
  readonly served: ServedCalls;
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
  const { entitlements, planChanges, served, catalog } = await composeTestService(database.pool, clock);
  const clientWith = (token: string | null) => inMemoryClient(served, token);
  return { ...database, clock, entitlements, planChanges, catalog, served, client: clientWith(SERVICE_TOKEN), clientWith };
}
