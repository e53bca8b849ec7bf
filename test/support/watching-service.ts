import { ConnectError, createClient, createRouterTransport, type Client, type Interceptor } from "@connectrpc/connect";
import { SubscriptionService } from "../../gen/entitlements/v1/subscription_service_pb.js";
import type { ServedCalls } from "../../src/transport/listeners.ts";
import { routerOptions, routes } from "../../src/transport/routes.ts";
import { afterAll } from "vitest";
import type { EntitlementService, WatchEntitlementsResponse } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { changeListener, composeService, type ComposedService, type ServiceSettings } from "../../src/compose.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { TestClock } from "./clock.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";
import { inMemoryClient, TEST_SETTINGS } from "./service.ts";

export type WatchingService = TestDatabase & {
  readonly clock: TestClock;
  readonly composed: ComposedService;
  readonly client: Client<typeof EntitlementService>;
};

/**
 * The service on a fresh database with its change feed running and listening for notifications,
 * as startService runs it; stopped after the file's tests.
 */
export async function createWatchingService(settings: Partial<ServiceSettings> = {}, start = "2026-03-15T12:00:00Z"): Promise<WatchingService> {
  const database = await createTestDatabase();
  const clock = new TestClock(start);
  const logger = createLogger("silent");
  const composed = await composeService({ ...TEST_SETTINGS, ...settings }, database.pool, { clock, logger });
  await composed.feed.start();
  const listener = changeListener(composed, database.sessionUrl, logger);
  await listener.start();
  afterAll(async () => {
    composed.feed.close();
    await listener.stop();
  });
  return { ...database, clock, composed, client: inMemoryClient(composed.served) };
}

/** A message of a watch stream: WatchEntitlements' or WatchMySubscription's. */
type WatchMessage = { readonly kind: WatchEntitlementsResponse["kind"] };

/** Reads a watch's messages one at a time, each within `timeoutMs`. */
export class WatchReader<Message extends WatchMessage = WatchEntitlementsResponse> {
  readonly #iterator: AsyncIterator<Message>;
  readonly #abort: AbortController;
  /** A read that outlived its timeout: the next read takes its message. */
  #pending: Promise<IteratorResult<Message>> | undefined;

  /** Reads the stream `open` starts, which ends when the signal given aborts. */
  constructor(open: (signal: AbortSignal) => AsyncIterable<Message>) {
    this.#abort = new AbortController();
    this.#iterator = open(this.#abort.signal)[Symbol.asyncIterator]();
  }

  /** A WatchEntitlements stream of `client`. */
  static of(client: Client<typeof EntitlementService>, request: { userIds: string[]; fromPosition?: bigint; snapshotUserIds?: string[] }): WatchReader {
    return new WatchReader((signal) => client.watchEntitlements(request, { signal }));
  }

  async next(timeoutMs = 5000): Promise<Message> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no watch message within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      this.#pending ??= this.#iterator.next();
      const result = await Promise.race([this.#pending, timeout]);
      this.#pending = undefined;
      if (result.done === true) throw new Error("the watch ended");
      return result.value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The next message, which must be an event (heartbeats are skipped). */
  async nextEvent(timeoutMs = 5000) {
    for (;;) {
      const message = await this.next(timeoutMs);
      if (message.kind.case === "event") return message.kind.value;
      if (message.kind.case !== "heartbeat") throw new Error(`expected an event, got a ${message.kind.case}`);
    }
  }

  /** Whether no message but heartbeats arrives within `ms`. */
  async quietFor(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    for (;;) {
      const left = until - Date.now();
      if (left <= 0) return true;
      try {
        if ((await this.next(left)).kind.case !== "heartbeat") return false;
      } catch (error) {
        if ((error as Error).message.startsWith("no watch message")) return true;
        throw error;
      }
    }
  }

  close(): void {
    this.#abort.abort();
  }
}

/** The error a watch ends with (messages before it are read and dropped). */
export async function watchError(reader: WatchReader<WatchMessage>): Promise<ConnectError> {
  for (;;) {
    try {
      await reader.next();
    } catch (error) {
      return ConnectError.from(error);
    }
  }
}

/** A SubscriptionService client over the real routes, in memory, as the user of `token` (none: anonymous). */
export function subscriptionClient(served: ServedCalls, token: string | undefined): Client<typeof SubscriptionService> {
  const asUser: Interceptor = (next) => (request) => {
    if (token !== undefined) request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
  return createClient(SubscriptionService, createRouterTransport(routes(served.registrations), { router: routerOptions(served, 1000), transport: { interceptors: [asUser] } }));
}
