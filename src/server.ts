import type { Config } from "./config.ts";
import { changeListener, composeService } from "./compose.ts";
import { loadCatalogFile, loadDefaultCatalog } from "./app/catalog-file.ts";
import { isLoopbackHost } from "./auth/gates.ts";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "./db/embedded.ts";
import { deleteExpiredIdempotencyKeys } from "./db/idempotency-keys.ts";
import { deleteExpiredConsumptionKeys } from "./db/consumption-keys.ts";
import { deleteSpentReservations } from "./db/reservations.ts";
import { deleteOldEvents } from "./db/entitlement-events.ts";
import { deleteSettledDeliveries } from "./db/webhook-deliveries.ts";
import { eraseLapsedSecrets } from "./db/webhook-endpoints.ts";
import { IDEMPOTENCY_KEY_RETENTION_DAYS } from "./app/increments.ts";
import { migrate } from "./db/migrate.ts";
import { createDatabasePool, isPooled, poolOptionsFor, statementTimeoutOf, type DatabaseAddress } from "./db/pool.ts";
import type { DatabasePool } from "slonik";
import { seedCatalog } from "./db/seed.ts";
import { systemClock, type Clock } from "./domain/clock.ts";
import { loadDevSecrets } from "./platform/dev-secrets.ts";
import type { Logger } from "./platform/logger.ts";
import { Metrics } from "./platform/metrics.ts";
import { listenAll, type Listener } from "./transport/listeners.ts";
import { readTlsMaterial } from "./transport/tls.ts";

const IDEMPOTENCY_SWEEP_MS = 60 * 60 * 1000;
/** How often due plan changes are written down and expiries announced (answers never wait for either). */
const TIMED_CHANGE_SWEEP_MS = 5 * 1000;

export type RunningService = Listener & {
  readonly databaseUrl: string;
  /** The service token to show a developer on the embedded default. */
  readonly devServiceToken: string | undefined;
  /** The embedded PostgreSQL's URL (with its password), when the service started one. */
  readonly embeddedDatabaseUrl: string | undefined;
  /** Whether `entitlements token` mints user tokens this service accepts (it verifies with a secret the CLI knows). */
  readonly mintsUserTokens: boolean;
  close(): Promise<void>;
};

/** The database the configuration names, if it names one. */
export function configuredDatabase(config: Config): DatabaseAddress | undefined {
  if (config.databaseUrl === undefined) return undefined;
  return { url: config.databaseUrl, sessionUrl: config.databaseSessionUrl ?? config.databaseUrl, preparedStatements: config.databasePreparedStatements };
}

/** The embedded PostgreSQL: one URL for everything. */
export function embeddedDatabase(url: string): DatabaseAddress {
  return { url, sessionUrl: url, preparedStatements: true };
}

/** Behind a pooler, statement_timeout is the pooler's or the role's to set: say so when nobody did. */
async function warnWithoutStatementTimeout(pool: DatabasePool, logger: Logger): Promise<void> {
  if ((await statementTimeoutOf(pool)) === "0") {
    logger.warn("statement_timeout is 0 behind the pooler: set it for the role or in the pooler (docs/scaling.md)");
  }
}

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
  let database = configuredDatabase(config);
  if (database === undefined) {
    const secrets = await loadDevSecrets(config.dataDir);
    jwtSecret ??= secrets.jwtSecret;
    embedded = await startEmbeddedPostgres(`${config.dataDir}/postgres`, secrets.postgresPassword, logger, config.embeddedPgPort);
    database = embeddedDatabase(embedded.databaseUrl);
    if (serviceTokens.length === 0) {
      serviceTokens = [{ name: "dev", token: secrets.serviceToken }];
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
  try {
    await migrate(database.sessionUrl, logger);
    const metrics = new Metrics();
    const pool = await createDatabasePool(database.url, {
      interceptors: [metrics.queryInterceptor()],
      maxPoolSize: config.databasePoolSize,
      statementTimeoutMs: config.databaseStatementTimeoutMs,
      connectTimeoutMs: config.databaseConnectTimeoutMs,
      ...poolOptionsFor(database),
    });
    if (isPooled(database)) await warnWithoutStatementTimeout(pool, logger);
    metrics.observePool(pool);
    // CATALOG_FILE is applied (a file that does not validate stops the start); without it, the
    // default catalog goes into an empty database only, so a team's own catalog stays as it is.
    if (config.catalogFile !== undefined) await seedCatalog(pool, await loadCatalogFile(config.catalogFile));
    else await seedCatalog(pool, await loadDefaultCatalog(), { onlyIfEmpty: true });
    const composed = await composeService({ ...config, serviceTokens, jwtSecret }, pool, { logger, clock, metrics });
    const { catalog, planChanges, lapses, health, feed, webhooks, served } = composed;
    catalog.startRefreshing();
    // Changes made through any replica reach this one's caches and feed as notifications.
    const notifications = changeListener(composed, database.sessionUrl, logger);
    await feed.start();
    if (config.webhookUrls.length > 0) await composed.webhookEndpoints.configure(config.webhookUrls, config.webhookSecret!);
    webhooks.start();
    await notifications.start().catch((error: unknown) => logger.warn({ err: error }, "not listening for changes yet; caching is off"));
    health.startProbing();
    const listener = await listenAll(
      served,
      {
        host: config.host,
        tls: config.tls === undefined ? undefined : await readTlsMaterial(config.tls),
        grpcPort: config.grpcPort,
        httpPort: config.httpPort,
        maxInFlight: config.maxInFlight,
        maxMessageBytes: config.maxMessageBytes,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
        corsOrigins: config.corsOrigins,
      },
    );
    // Reservations are kept as long as keys, so a late commit or release is answered as it stands.
    const sweep = setInterval(() => {
      const now = clock.now();
      Promise.all([
        deleteExpiredIdempotencyKeys(pool, now),
        deleteExpiredConsumptionKeys(pool, now),
        deleteSpentReservations(pool, new Date(now.getTime() - IDEMPOTENCY_KEY_RETENTION_DAYS * 86_400_000)),
        deleteOldEvents(pool, new Date(now.getTime() - config.eventRetentionDays * 86_400_000)),
        deleteSettledDeliveries(pool, new Date(now.getTime() - config.eventRetentionDays * 86_400_000)),
        eraseLapsedSecrets(pool, now),
      ]).catch((error: unknown) => logger.warn({ err: error }, "idempotency key, reservation, event and webhook secret sweep failed"));
    }, IDEMPOTENCY_SWEEP_MS).unref();
    // Answers put scheduled changes and expiries in force at their time; this writes down the
    // changes that came due and gives the change feed their events.
    const scheduled = setInterval(() => {
      planChanges.writeDownDueChanges().catch((error: unknown) => logger.warn({ err: error }, "writing down due plan changes failed"));
      lapses.announceDue().catch((error: unknown) => logger.warn({ err: error }, "announcing expiries failed"));
    }, TIMED_CHANGE_SWEEP_MS).unref();
    logger.info(
      { host: config.host, grpcPort: listener.grpcPort, httpPort: listener.httpPort, embedded: embedded !== undefined },
      "entitlement service listening",
    );
    return {
      ...listener,
      databaseUrl: database.url,
      devServiceToken,
      embeddedDatabaseUrl: embedded?.databaseUrl,
      mintsUserTokens: jwtSecret !== undefined,
      close: async () => {
        // Health turns NOT_SERVING first, so balancers stop sending while in-flight calls drain.
        health.shutdown();
        // Watches never end by themselves: they end at once, and their clients resume elsewhere.
        feed.close();
        webhooks.stop();
        clearInterval(sweep);
        clearInterval(scheduled);
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
