import type { DatabasePool } from "slonik";
import { Administration } from "./app/administration.ts";
import { CatalogAdministration } from "./app/catalog-administration.ts";
import { CatalogSource } from "./app/catalog-source.ts";
import { Entitlements } from "./app/entitlements.ts";
import { HealthMonitor } from "./app/health-monitor.ts";
import { ReplicaCache } from "./app/replica-cache.ts";
import { SignIns } from "./app/sign-ins.ts";
import { TermsAdministration } from "./app/terms-administration.ts";
import { PlanChanges } from "./app/plan-changes.ts";
import { UsageChanges } from "./app/usage-changes.ts";
import { Reservations } from "./app/reservations.ts";
import { ChangeFeed } from "./app/change-feed.ts";
import { Lapses } from "./app/lapses.ts";
import { UsageAlerts } from "./app/usage-alerts.ts";
import { WebhookDispatcher } from "./app/webhook-dispatcher.ts";
import { WebhookEndpoints } from "./app/webhook-endpoints.ts";
import { webhookPayload } from "./services/event-messages.ts";
import { EntitlementWatches } from "./app/entitlement-watches.ts";
import { createUserTokenVerifier, type UserTokenVerifier } from "./auth/user-tokens.ts";
import type { Config } from "./config.ts";
import { CallTransactions } from "./db/call-transaction.ts";
import { NotificationListener } from "./db/notifications.ts";
import { IncrementBatcher } from "./db/increment-batcher.ts";
import type { AccountStanding } from "./db/accounts.ts";
import { systemClock, type Clock } from "./domain/clock.ts";
import type { QuotaState, UsageLevel } from "./domain/quota.ts";
import type { Logger } from "./platform/logger.ts";
import { Metrics } from "./platform/metrics.ts";
import { PUBLIC_METHODS, SERVED_SERVICES, serviceRegistrations } from "./services/registrations.ts";
import { deadlineInterceptor } from "./transport/interceptors/deadline.ts";
import type { ServedCalls } from "./transport/listeners.ts";

/** How often the change feed looks for events without being told of them (a lost notification). */
const FEED_POLL_MS = 1000;

/** The settings the service's parts are built from. */
export type ServiceSettings = Pick<
  Config,
  | "serviceTokens"
  | "jwtSecret"
  | "jwtJwksUrl"
  | "jwtIssuer"
  | "jwtAudience"
  | "jwtClockToleranceSeconds"
  | "databaseStatementTimeoutMs"
  | "standingCacheTtlMs"
  | "standingCacheSize"
  | "usageCacheTtlMs"
  | "usageCacheSize"
  | "watchMaxStreams"
  | "watchHeartbeatMs"
  | "watchMaxBacklog"
  | "webhookRetryDelaysMs"
  | "webhookRetryForMs"
  | "webhookTimeoutMs"
>;

/** What the service is built with besides its settings and pool; each has a default but the logger. */
export type ServiceParts = {
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly metrics?: Metrics;
  /** A catalog already loaded; otherwise it is loaded from the pool. */
  readonly catalog?: CatalogSource;
  /** Verifies user tokens; otherwise one is made from the JWT settings. */
  readonly verifyUserToken?: UserTokenVerifier;
};

/** The service's parts, wired: what startService serves and what the tests call. */
export type ComposedService = {
  readonly catalog: CatalogSource;
  readonly entitlements: Entitlements;
  readonly administration: Administration;
  /** Plan changes now, trials and scheduled changes (with the sweep that writes down those due). */
  readonly planChanges: PlanChanges;
  readonly signIns: SignIns;
  readonly health: HealthMonitor;
  readonly metrics: Metrics;
  /** Account standings cached per replica, trusted only while change notifications arrive. */
  readonly standings: ReplicaCache<AccountStanding> | undefined;
  /** The sweep that gives the change feed the events of trials, overrides, grants and subscriptions that ended. */
  readonly lapses: Lapses;
  /** Webhook endpoints, as admins and WEBHOOK_URLS keep them. */
  readonly webhookEndpoints: WebhookEndpoints;
  /** POSTs events to the endpoints: start it to deliver, stop it at shutdown. */
  readonly webhooks: WebhookDispatcher;
  /** This replica's view of the change feed: start it to serve watches; close it to end them. */
  readonly feed: ChangeFeed;
  /** What the listeners (and the in-memory test transport) serve. */
  readonly served: ServedCalls;
};

/** Builds the service from its settings and a database pool: one wiring for every caller. */
export async function composeService(settings: ServiceSettings, pool: DatabasePool, parts: ServiceParts): Promise<ComposedService> {
  const { logger } = parts;
  const clock = parts.clock ?? systemClock;
  const metrics = parts.metrics ?? new Metrics();
  const catalog = parts.catalog ?? (await CatalogSource.load(pool, logger));
  const standings =
    settings.standingCacheSize > 0 && settings.standingCacheTtlMs > 0
      ? new ReplicaCache<AccountStanding>({ ttlMs: settings.standingCacheTtlMs, maxEntries: settings.standingCacheSize })
      : undefined;
  // Usage is never announced (a notification per increment would serialize commits): the TTL
  // bounds how long another replica's increments go unseen here.
  const usage =
    settings.usageCacheSize > 0 && settings.usageCacheTtlMs > 0
      ? new ReplicaCache<UsageLevel>({ ttlMs: settings.usageCacheTtlMs, maxEntries: settings.usageCacheSize, enabled: true })
      : undefined;
  const batcher = new IncrementBatcher(pool);
  // Alerts need the entitlements that tell them of usage: bound once both exist.
  let alerts: UsageAlerts | undefined;
  const usageWatcher = {
    raised: (userId: string, quotas: readonly QuotaState[]) => alerts?.raised(userId, quotas),
    forgotten: (userId: string) => alerts?.forgotten(userId),
  };
  const entitlements = new Entitlements(pool, catalog, clock, { standings, usage, batcher, coalesceReads: true, usageWatcher });
  alerts = new UsageAlerts(pool, entitlements, logger);
  const usageChanges = new UsageChanges(pool, entitlements, clock, batcher);
  const reservations = new Reservations(pool, entitlements, usageChanges, clock, batcher);
  const administration = new Administration(pool, entitlements, clock);
  const catalogs = new CatalogAdministration(pool, entitlements, clock);
  const terms = new TermsAdministration(pool, entitlements, clock);
  const planChanges = new PlanChanges(pool, entitlements, clock);
  const signIns = new SignIns(pool, entitlements, clock);
  const feed = new ChangeFeed(pool, logger, { maxWatches: settings.watchMaxStreams, pollMs: FEED_POLL_MS });
  const planAt = (code: string, version: number) => entitlements.planAt(code, version);
  const webhooks = new WebhookDispatcher(
    pool,
    clock,
    logger,
    { retryDelaysMs: settings.webhookRetryDelaysMs, retryForMs: settings.webhookRetryForMs, timeoutMs: settings.webhookTimeoutMs },
    (event) => webhookPayload(event, planAt),
  );
  const webhookEndpoints = new WebhookEndpoints(pool, clock, webhooks);
  const watches = new EntitlementWatches(pool, feed, entitlements, {
    heartbeatMs: settings.watchHeartbeatMs,
    maxBacklog: settings.watchMaxBacklog,
    maxOwnWatches: Math.floor(settings.watchMaxStreams / 2),
  });
  const health = new HealthMonitor(pool, SERVED_SERVICES.map((service) => service.typeName), logger);
  const verifyUserToken =
    parts.verifyUserToken ??
    createUserTokenVerifier({
      secret: settings.jwtSecret,
      jwksUrl: settings.jwtJwksUrl,
      issuer: settings.jwtIssuer,
      audience: settings.jwtAudience,
      clockToleranceSeconds: settings.jwtClockToleranceSeconds,
    });
  const registrations = serviceRegistrations({
    entitlements,
    administration,
    catalogs,
    terms,
    planChanges,
    usageChanges,
    reservations,
    watches,
    webhooks: webhookEndpoints,
    signIns,
    health,
    serviceTokens: settings.serviceTokens,
    verifyUserToken,
    logger,
  });
  return {
    catalog,
    entitlements,
    administration,
    planChanges,
    signIns,
    health,
    metrics,
    standings,
    lapses: new Lapses(pool, entitlements, clock),
    feed,
    webhookEndpoints,
    webhooks,
    served: {
      registrations,
      publicMethods: PUBLIC_METHODS,
      health,
      logger,
      metrics,
      databaseDeadlines: deadlineInterceptor(new CallTransactions(pool), settings.databaseStatementTimeoutMs),
    },
  };
}

/**
 * The listener that brings changes made through any replica to this one: account changes evict
 * its caches, catalog changes reload the catalog, events move the change feed.
 */
export function changeListener(service: ComposedService, databaseUrl: string, logger: Logger): NotificationListener {
  const { entitlements, catalog, standings, feed, webhooks } = service;
  return new NotificationListener(
    databaseUrl,
    {
      onAccountChanged: (userId) => entitlements.forget(userId),
      onCatalogChanged: () => void catalog.refresh().catch((error: unknown) => logger.warn({ err: error }, "catalog refresh failed")),
      onEventRecorded: () => feed.sequence(),
      onFeedAdvanced: (head) => {
        feed.read(head);
        webhooks.wake();
      },
      onListening: (listening) => {
        standings?.setEnabled(listening);
        // Back from an outage: what was told meanwhile is read now, not on the next tick.
        if (listening) {
          feed.sequence();
          feed.read();
        }
      },
    },
    logger,
  );
}
