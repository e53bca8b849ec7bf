import { readFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { NodeRequest } from "./transport/http/transcoding.ts";
import { methodCalls } from "./transport/method-calls.ts";
import { createGrpcServer, grpcCredentials } from "./transport/grpc/grpc-server.ts";
import { createNodeHandler } from "./transport/connect/node-handler.ts";
import type { AddressInfo } from "node:net";
import {
  createContextValues,
  type ConnectRouter,
  type ConnectRouterOptions,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { EntitlementService } from "../gen/entitlements/v1/entitlement_service_pb.js";
import { SubscriptionService } from "../gen/entitlements/v1/subscription_service_pb.js";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { AdminService } from "../gen/entitlements/v1/admin_service_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { HealthMonitor } from "./app/health-monitor.ts";
import { HealthServiceImpl } from "./services/health-service.ts";
import { ReflectionIndex, ReflectionV1alphaServiceImpl, ReflectionV1ServiceImpl } from "./services/reflection-service.ts";
import { Administration } from "./app/administration.ts";
import { isLoopbackHost, peerAddressKey, serviceTokenGate, superadminGate, userTokenGate } from "./auth/gates.ts";
import { AdminServiceImpl } from "./services/admin-service.ts";
import { withOperationsEndpoints } from "./transport/http/operations.ts";
import { createTranscodingHandler } from "./transport/http/transcoding.ts";
import { PUBLIC_SUBSCRIPTION_METHODS, SubscriptionServiceImpl } from "./services/subscription-service.ts";
import { createUserTokenVerifier, type UserTokenVerifier } from "./auth/user-tokens.ts";
import { CatalogSource } from "./app/catalog-source.ts";
import { systemClock, type Clock } from "./domain/clock.ts";
import type { Config } from "./config.ts";
import type { AccountStanding } from "./db/accounts.ts";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "./db/embedded.ts";
import { deleteExpiredIdempotencyKeys } from "./db/idempotency-keys.ts";
import { migrate } from "./db/migrate.ts";
import { createDatabasePool } from "./db/pool.ts";
import { NotificationListener } from "./db/notifications.ts";
import { seedCatalog } from "./db/seed.ts";
import { IncrementBatcher } from "./db/increment-batcher.ts";
import { ReplicaCache } from "./app/replica-cache.ts";
import { loadDevSecrets } from "./platform/dev-secrets.ts";
import { Entitlements } from "./app/entitlements.ts";
import { deadlineInterceptor } from "./db/call-transaction.ts";
import { errorMappingInterceptor } from "./transport/interceptors/error-mapping.ts";
import { loadSheddingInterceptor } from "./transport/interceptors/load-shedding.ts";
import { Metrics } from "./platform/metrics.ts";
import { callAttributesInterceptor } from "./transport/connect/observe-handler.ts";
import type { Logger } from "./platform/logger.ts";
import { EntitlementServiceImpl } from "./services/entitlement-service.ts";

/** Largest request message accepted on any protocol, unless configured otherwise. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

const IDEMPOTENCY_SWEEP_MS = 60 * 60 * 1000;

export type RouteDependencies = {
  readonly entitlements: Entitlements;
  readonly health: HealthMonitor;
  readonly metrics: Metrics;
  /** Bounds each call's database work by its deadline (deadlineInterceptor). */
  readonly databaseDeadlines: Interceptor;
  readonly administration: Administration;
  readonly serviceTokens: readonly string[];
  readonly verifyUserToken: UserTokenVerifier;
  readonly logger: Logger;
};

/** Every RPC service and the credential each one requires. */
/** The services the server answers for, reflection and health included. */
export const SERVED_SERVICES = [
  EntitlementService,
  SubscriptionService,
  AdminService,
  Health,
  ServerReflectionV1,
  ServerReflectionV1alpha,
] as const;

/** A service, its implementation and the gate its callers pass: one list for every server. */
export type ServiceRegistration = {
  readonly service: DescService;
  readonly implementation: object;
  readonly requestGate?: (context: HandlerContext) => void | Promise<void>;
};

/** Every RPC service and the credential each one requires. */
export function serviceRegistrations({
  entitlements,
  administration,
  health,
  serviceTokens,
  verifyUserToken,
  logger,
}: RouteDependencies): ServiceRegistration[] {
  const reflection = new ReflectionIndex(SERVED_SERVICES);
  const userGate = (publicMethods: readonly DescMethod[]) =>
    userTokenGate({ verify: verifyUserToken, admit: (user) => administration.admit(user), publicMethods, logger });
  return [
    { service: EntitlementService, implementation: new EntitlementServiceImpl(entitlements), requestGate: serviceTokenGate(serviceTokens) },
    { service: SubscriptionService, implementation: new SubscriptionServiceImpl(entitlements), requestGate: userGate(PUBLIC_SUBSCRIPTION_METHODS) },
    {
      service: AdminService,
      implementation: new AdminServiceImpl(administration, entitlements),
      requestGate: superadminGate(userGate([]), (userId) => administration.isSuperadmin(userId)),
    },
    // Health and reflection answer without credentials, as load balancers and tools expect.
    { service: Health, implementation: new HealthServiceImpl(health) },
    { service: ServerReflectionV1, implementation: new ReflectionV1ServiceImpl(reflection) },
    { service: ServerReflectionV1alpha, implementation: new ReflectionV1alphaServiceImpl(reflection) },
  ];
}

/** The registrations as Connect routes. */
export function routes(registrations: readonly ServiceRegistration[]) {
  return (router: ConnectRouter) => {
    for (const { service, implementation, requestGate } of registrations) {
      router.service(service, implementation, requestGate === undefined ? undefined : { requestGate });
    }
  };
}

/** Options of the router that every transport (and the in-memory test transport) shares. */
export function routerOptions(
  deps: Pick<RouteDependencies, "logger" | "metrics" | "databaseDeadlines">,
  maxInFlight: number,
  maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
) {
  return {
    interceptors: [
      loadSheddingInterceptor(maxInFlight),
      callAttributesInterceptor(deps.metrics),
      errorMappingInterceptor(deps.logger),
      deps.databaseDeadlines,
    ],
    readMaxBytes: maxMessageBytes,
    // JSON clients see every field, "used": "0" included, rather than guessing at defaults.
    jsonOptions: { alwaysEmitImplicit: true },
  } satisfies ConnectRouterOptions;
}

export type Listener = {
  readonly grpcPort: number;
  readonly httpPort: number;
  close(): Promise<void>;
};

function listen(server: http.Server | https.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Stops accepting connections, lets in-flight requests finish (idle keep-alive connections are
 * closed at once), and after `timeoutMs` closes what is left.
 */
function closeGracefully(server: http.Server | https.Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Serves the services on two ports: native gRPC (HTTP/2, through @grpc/grpc-js) on the gRPC
 * port, and Connect, gRPC-Web and the /v1 JSON endpoints (HTTP/1.1, through connect-node) on the
 * HTTP port. Both run the same registrations, gates and interceptors.
 */
/** PEM contents for TLS on both ports; with `clientCa`, mutual TLS. */
export type TlsMaterial = {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer | undefined;
};

export async function readTlsMaterial(files: NonNullable<Config["tls"]>): Promise<TlsMaterial> {
  const [cert, key, clientCa] = await Promise.all([
    readFile(files.certFile),
    readFile(files.keyFile),
    files.clientCaFile === undefined ? undefined : readFile(files.clientCaFile),
  ]);
  return { cert, key, clientCa };
}

function tlsOptions(tls: TlsMaterial) {
  return {
    cert: tls.cert,
    key: tls.key,
    minVersion: "TLSv1.2" as const,
    // With a client CA, a caller without a certificate it signed fails the handshake.
    ...(tls.clientCa === undefined ? {} : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
  };
}

export type ListenOptions = {
  readonly host: string;
  readonly tls?: TlsMaterial | undefined;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly maxInFlight: number;
  readonly maxMessageBytes?: number;
  readonly shutdownTimeoutMs: number;
};

export async function listenAll(deps: RouteDependencies, options: ListenOptions): Promise<Listener> {
  const contextValues = (request: NodeRequest) =>
    createContextValues().set(peerAddressKey, request.socket.remoteAddress);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const rpcOptions = routerOptions(deps, options.maxInFlight, maxMessageBytes);
  // One set of implementations for every protocol: connect-node routes them, and the grpc-js
  // server and the /v1 layer run their methods themselves (calls.ts).
  const registrations = serviceRegistrations(deps);
  const methods = methodCalls(registrations, { interceptors: rpcOptions.interceptors, logger: deps.logger, metrics: deps.metrics });
  const handler = createNodeHandler({
    routes: routes(registrations),
    routerOptions: rpcOptions,
    contextValues,
    // Requests for paths that are not RPCs: the operations endpoints and the /v1 JSON layer.
    fallback: withOperationsEndpoints(
      { health: deps.health, metrics: deps.metrics },
      createTranscodingHandler({
        methods,
        publicMethods: PUBLIC_SUBSCRIPTION_METHODS,
        maxBodyBytes: maxMessageBytes,
        logger: deps.logger,
      }),
    ),
    logger: deps.logger,
    metrics: deps.metrics,
  });
  const httpServer =
    options.tls === undefined ? http.createServer(handler) : https.createServer(tlsOptions(options.tls), handler);
  const grpcServer = createGrpcServer({ methods, maxMessageBytes, logger: deps.logger });
  const { shutdownTimeoutMs } = options;
  const closeGrpc = () =>
    new Promise<void>((resolve) => {
      const force = setTimeout(() => grpcServer.forceShutdown(), shutdownTimeoutMs).unref();
      grpcServer.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  const close = () => Promise.all([closeGrpc(), closeGracefully(httpServer, shutdownTimeoutMs)]).then(() => undefined);
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.grpcPort}`, grpcCredentials(options.tls), (error, port) =>
      error ? reject(error) : resolve(port),
    ),
  );
  const httpPort = await listen(httpServer, options.httpPort, options.host).catch(async (error: unknown) => {
    await close();
    throw error;
  });
  return { grpcPort, httpPort, close };
}

export type RunningService = Listener & {
  readonly databaseUrl: string;
  /** The service token to show a developer on the embedded default. */
  readonly devServiceToken: string | undefined;
  close(): Promise<void>;
};

/**
 * Boots the whole service: the database (embedded when no DATABASE_URL is set), migrations, the
 * catalog seed, then the listeners.
 */
export async function startService(
  config: Config,
  logger: Logger,
  clock: Clock = systemClock,
): Promise<RunningService> {
  let embedded: EmbeddedDatabase | undefined;
  let serviceTokens = config.serviceTokens;
  let devServiceToken: string | undefined;
  let jwtSecret = config.jwtSecret;
  let databaseUrl = config.databaseUrl;
  if (databaseUrl === undefined) {
    const secrets = await loadDevSecrets(config.dataDir);
    jwtSecret ??= secrets.jwtSecret;
    embedded = await startEmbeddedPostgres(`${config.dataDir}/postgres`, secrets.postgresPassword, logger);
    databaseUrl = embedded.databaseUrl;
    if (serviceTokens.length === 0) {
      serviceTokens = [secrets.serviceToken];
      devServiceToken = secrets.serviceToken;
    }
  }
  if (serviceTokens.length === 0) {
    logger.warn(
      { host: config.host },
      isLoopbackHost(config.host)
        ? "SERVICE_TOKENS is not set: EntitlementService accepts any caller on this loopback host"
        : "SERVICE_TOKENS is not set: EntitlementService accepts only callers connecting from loopback",
    );
  }
  if (jwtSecret === undefined && config.jwtJwksUrl === undefined) {
    logger.warn("neither JWT_SECRET nor JWT_JWKS_URL is set: every user token is refused");
  }
  const verifyUserToken = createUserTokenVerifier({
    secret: jwtSecret,
    jwksUrl: config.jwtJwksUrl,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    clockToleranceSeconds: config.jwtClockToleranceSeconds,
  });
  try {
    await migrate(databaseUrl, logger);
    const metrics = new Metrics();
    const pool = await createDatabasePool(databaseUrl, {
      interceptors: [metrics.queryInterceptor()],
      maxPoolSize: config.databasePoolSize,
      statementTimeoutMs: config.databaseStatementTimeoutMs,
      connectTimeoutMs: config.databaseConnectTimeoutMs,
    });
    metrics.observePool(pool);
    await seedCatalog(pool);
    const catalog = await CatalogSource.load(pool, logger);
    catalog.startRefreshing();
    const standings =
      config.standingCacheSize > 0 && config.standingCacheTtlMs > 0
        ? new ReplicaCache<AccountStanding>({ ttlMs: config.standingCacheTtlMs, maxEntries: config.standingCacheSize })
        : undefined;
    // Usage is never announced (a notification per increment would serialize commits): the TTL
    // bounds how long another replica's increments go unseen here.
    const usage =
      config.usageCacheSize > 0 && config.usageCacheTtlMs > 0
        ? new ReplicaCache<bigint>({ ttlMs: config.usageCacheTtlMs, maxEntries: config.usageCacheSize, enabled: true })
        : undefined;
    const entitlements = new Entitlements(pool, catalog, clock, { standings, usage, batcher: new IncrementBatcher(pool), coalesceReads: true });
    // Changes made through any replica reach this one's caches as notifications.
    const notifications = new NotificationListener(
      databaseUrl,
      {
        onAccountChanged: (userId) => entitlements.forget(userId),
        onCatalogChanged: () => void catalog.refresh().catch((error: unknown) => logger.warn({ err: error }, "catalog refresh failed")),
        onListening: (listening) => standings?.setEnabled(listening),
      },
      logger,
    );
    await notifications.start().catch((error: unknown) => logger.warn({ err: error }, "not listening for changes yet; caching is off"));
    const administration = new Administration(pool, entitlements, clock);
    const health = new HealthMonitor(pool, SERVED_SERVICES.map((service) => service.typeName), logger);
    health.startProbing();
    const listener = await listenAll(
      {
        entitlements,
        administration,
        health,
        metrics,
        databaseDeadlines: deadlineInterceptor(pool, config.databaseStatementTimeoutMs),
        serviceTokens,
        verifyUserToken,
        logger,
      },
      {
        host: config.host,
        tls: config.tls === undefined ? undefined : await readTlsMaterial(config.tls),
        grpcPort: config.grpcPort,
        httpPort: config.httpPort,
        maxInFlight: config.maxInFlight,
        maxMessageBytes: config.maxMessageBytes,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
      },
    );
    const sweep = setInterval(() => {
      deleteExpiredIdempotencyKeys(pool, clock.now()).catch((error: unknown) =>
        logger.warn({ err: error }, "idempotency key sweep failed"),
      );
    }, IDEMPOTENCY_SWEEP_MS).unref();
    logger.info(
      { host: config.host, grpcPort: listener.grpcPort, httpPort: listener.httpPort, embedded: embedded !== undefined },
      "entitlement service listening",
    );
    return {
      ...listener,
      databaseUrl,
      devServiceToken,
      close: async () => {
        // Health turns NOT_SERVING first, so balancers stop sending while in-flight calls drain.
        health.shutdown();
        clearInterval(sweep);
        catalog.stopRefreshing();
        await notifications.stop();
        await listener.close();
        await pool.end();
        await embedded?.stop();
      },
    };
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}
