import pg from "pg";
import { sql, type CommonQueryMethods } from "slonik";
import type { Logger } from "../platform/logger.ts";
import { OutageLog } from "../platform/outage-log.ts";

/** The channel that tells every replica an account's standing (plan, status, sessions) changed. */
export const ACCOUNT_CHANNEL = "entitlements_account";
/** The channel that tells every replica the plan catalog changed. */
export const CATALOG_CHANNEL = "entitlements_catalog";
/** Told when a change feed event is committed, not yet sequenced (record_entitlement_event). */
export const OUTBOX_CHANNEL = "entitlements_outbox";
/** Told the feed's new head when events are sequenced (sequence_entitlement_events). */
export const FEED_CHANNEL = "entitlements_feed";

/** Tells every replica, when the surrounding transaction commits, that the account changed. */
export async function notifyAccountChanged(db: CommonQueryMethods, userId: string): Promise<void> {
  await db.query(sql.unsafe`select pg_notify(${ACCOUNT_CHANNEL}, ${userId})`);
}

export async function notifyCatalogChanged(db: CommonQueryMethods): Promise<void> {
  await db.query(sql.unsafe`select pg_notify(${CATALOG_CHANNEL}, '')`);
}

export type NotificationHandlers = {
  readonly onAccountChanged: (userId: string) => void;
  readonly onCatalogChanged: () => void;
  /** An event was committed: sequence it. */
  readonly onEventRecorded?: () => void;
  /** The feed's head moved to the position given. */
  readonly onFeedAdvanced?: (head: bigint) => void;
  /** Listening started or stopped; while it is stopped, notifications may be missed. */
  readonly onListening: (listening: boolean) => void;
};

/**
 * A connection of its own that LISTENs to the channels above, and reconnects after losing the
 * database (telling `onListening`, so caches stop trusting themselves meanwhile).
 */
export class NotificationListener {
  #client: pg.Client | undefined;
  #stopped = false;
  #retry: NodeJS.Timeout | undefined;
  readonly #databaseUrl: string;
  readonly #handlers: NotificationHandlers;
  /** Reconnections are retried every 500 ms: logged once per outage, not per attempt. */
  readonly #outages: OutageLog;

  constructor(databaseUrl: string, handlers: NotificationHandlers, logger: Logger) {
    this.#databaseUrl = databaseUrl;
    this.#handlers = handlers;
    this.#outages = new OutageLog(logger, {
      down: "lost the notification connection; reconnecting (caching is off until it is back)",
      stillDown: "still not listening for changes",
      back: "listening for changes again",
    });
  }

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#databaseUrl, connectionTimeoutMillis: 2000, keepAlive: true });
    client.on("notification", (message) => {
      if (message.channel === ACCOUNT_CHANNEL && message.payload !== undefined) this.#handlers.onAccountChanged(message.payload);
      if (message.channel === CATALOG_CHANNEL) this.#handlers.onCatalogChanged();
      if (message.channel === OUTBOX_CHANNEL) this.#handlers.onEventRecorded?.();
      if (message.channel === FEED_CHANNEL && message.payload !== undefined && /^[0-9]+$/.test(message.payload)) this.#handlers.onFeedAdvanced?.(BigInt(message.payload));
    });
    const lost = (error?: Error) => {
      if (this.#client !== client) return;
      this.#client = undefined;
      this.#handlers.onListening(false);
      client.removeAllListeners();
      client.on("error", () => {});
      void client.end().catch(() => {});
      if (this.#stopped) return;
      this.#outages.down(error ?? new Error("the connection ended"));
      this.#retry = setTimeout(() => void this.start().catch(() => {}), 500).unref();
    };
    client.on("error", lost);
    client.on("end", () => lost());
    try {
      await client.connect();
      // One round trip: a query without parameters goes as a simple query, which may hold several statements.
      await client.query([ACCOUNT_CHANNEL, CATALOG_CHANNEL, OUTBOX_CHANNEL, FEED_CHANNEL].map((channel) => `listen ${channel};`).join(" "));
    } catch (error) {
      this.#client = client;
      lost(error as Error);
      throw error;
    }
    this.#client = client;
    this.#outages.up();
    this.#handlers.onListening(true);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }
}
