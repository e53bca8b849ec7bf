import type { DatabasePool } from "slonik";
import { Webhook } from "standardwebhooks";
import { entitlementEventsAt, type EntitlementEventRecord } from "../db/entitlement-events.ts";
import { claimDueDeliveries, recordAttempt, type AttemptOutcome, type ClaimedDelivery } from "../db/webhook-deliveries.ts";
import type { Clock } from "../domain/clock.ts";
import { CoalescedRun } from "../platform/coalesced-run.ts";
import type { Logger } from "../platform/logger.ts";

export type WebhookSettings = {
  /** Waits after each failed attempt; the last one repeats. */
  readonly retryDelaysMs: readonly number[];
  /** How long after its first attempt a delivery is retried before it is given up. */
  readonly retryForMs: number;
  /** How long an endpoint has to answer with a 2xx. */
  readonly timeoutMs: number;
};

/** The body POSTed for an event (the contract's JSON, in the Standard Webhooks envelope). */
export type WebhookPayload = (event: EntitlementEventRecord) => Promise<string>;

/** Deliveries attempted at once per replica. */
const CONCURRENT_ATTEMPTS = 32;
/** Deliveries to one endpoint attempted at once across replicas: a slow endpoint holds no more. */
export const ATTEMPTS_PER_ENDPOINT = 16;
/** How often due retries are looked for without being told of new events. */
const POLL_MS = 1000;

/**
 * POSTs each event to the endpoints that take its type, signed by the Standard Webhooks scheme
 * (the `standardwebhooks` package), at least once, in order per account and endpoint; a failed
 * attempt is retried on the schedule of `settings`, then given up. Every replica runs one: they
 * lease deliveries from the database, so each attempt is made by one of them. Nothing here is on
 * a call's path.
 */
export class WebhookDispatcher {
  readonly #pool: DatabasePool;
  readonly #clock: Clock;
  readonly #settings: WebhookSettings;
  readonly #payloadOf: WebhookPayload;
  readonly #deliveries: CoalescedRun;
  #tick: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Resolved by the next wake: a pass waiting on slow attempts then claims what became due. */
  #woken = Promise.withResolvers<void>();

  constructor(pool: DatabasePool, clock: Clock, logger: Logger, settings: WebhookSettings, payloadOf: WebhookPayload) {
    this.#pool = pool;
    this.#clock = clock;
    this.#settings = settings;
    this.#payloadOf = payloadOf;
    this.#deliveries = new CoalescedRun({
      pass: async () => void (await this.deliverDue()),
      failed: (error) => logger.warn({ err: error }, "webhook deliveries failed; retrying on the next tick"),
      stopped: () => this.#stopped,
    });
  }

  start(): void {
    this.#tick ??= setInterval(() => this.wake(), POLL_MS).unref();
  }

  /** New events (or a retry's time) may be due: attempt what is. */
  wake(): void {
    this.#woken.resolve();
    this.#woken = Promise.withResolvers<void>();
    this.#deliveries.request();
  }

  /**
   * Attempts every delivery due now, CONCURRENT_ATTEMPTS at once: as each attempt ends, or as new
   * deliveries become due, it claims more, so a slow endpoint's attempts hold only their own
   * slots. Returns once nothing is in flight and nothing is due, with how many attempts it made.
   */
  async deliverDue(): Promise<number> {
    let attempted = 0;
    let failure: { readonly error: unknown } | undefined;
    const inFlight = new Set<Promise<void>>();
    for (;;) {
      if (failure !== undefined) {
        await Promise.all(inFlight);
        throw failure.error;
      }
      const free = CONCURRENT_ATTEMPTS - inFlight.size;
      const claimed = free > 0 ? await this.#claim(free) : [];
      if (claimed.length > 0) {
        const events = await entitlementEventsAt(this.#pool, claimed.map((delivery) => delivery.position));
        for (const delivery of claimed) {
          const attempt: Promise<void> = this.#attempt(delivery, events.get(delivery.position))
            .catch((error: unknown) => void (failure ??= { error }))
            .finally(() => inFlight.delete(attempt));
          inFlight.add(attempt);
        }
        attempted += claimed.length;
      } else if (inFlight.size === 0) {
        return attempted;
      } else {
        await Promise.race([...inFlight, this.#woken.promise]);
      }
    }
  }

  #claim(limit: number): Promise<readonly ClaimedDelivery[]> {
    const at = this.#clock.now();
    const leaseUntil = new Date(at.getTime() + this.#settings.timeoutMs + 5000);
    return claimDueDeliveries(this.#pool, at, leaseUntil, limit, ATTEMPTS_PER_ENDPOINT);
  }

  async #attempt(delivery: ClaimedDelivery, event: EntitlementEventRecord | undefined): Promise<void> {
    let outcome: AttemptOutcome;
    if (event === undefined) {
      outcome = { status: null, error: "the event is no longer kept (EVENT_RETENTION_DAYS)", delivered: false, retryAt: null };
    } else {
      const { status, error } = await this.#post(delivery, event);
      const delivered = status !== null && status >= 200 && status < 300;
      outcome = { status, error: delivered ? null : (error ?? `answered ${status}`), delivered, retryAt: delivered ? null : this.#retryAt(delivery) };
    }
    await recordAttempt(this.#pool, delivery, outcome, this.#clock.now());
  }

  async #post(delivery: ClaimedDelivery, event: EntitlementEventRecord): Promise<{ status: number | null; error: string | null }> {
    let body: string;
    try {
      body = await this.#payloadOf(event);
    } catch (error) {
      return { status: null, error: describe(error) };
    }
    return this.post(delivery.url, delivery.secrets, event.id, body);
  }

  /**
   * POSTs `body` to `url` as message `id`, signed with each of `secrets` (one signature each,
   * space-separated: a receiver still on a rotated-out secret verifies too): the status it
   * answered within the timeout (null with none), or why it got none.
   */
  async post(url: string, secrets: readonly string[], id: string, body: string): Promise<{ status: number | null; error: string | null }> {
    try {
      // Signed as sent: receivers check the timestamp against their own clocks.
      const sentAt = new Date();
      const response = await fetch(url, {
        method: "POST",
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(this.#settings.timeoutMs),
        headers: {
          "content-type": "application/json",
          "user-agent": "entitlement-service-webhooks",
          "webhook-id": id,
          "webhook-timestamp": String(Math.floor(sentAt.getTime() / 1000)),
          "webhook-signature": secrets.map((secret) => new Webhook(secret).sign(id, sentAt, body)).join(" "),
        },
      });
      await response.body?.cancel().catch(() => {});
      return { status: response.status, error: null };
    } catch (error) {
      const reason = error instanceof Error && error.name === "TimeoutError" ? `no answer within ${this.#settings.timeoutMs} ms` : describe(error);
      return { status: null, error: reason };
    }
  }

  /** When to try a failed delivery again: null once its retries have run out. */
  #retryAt(delivery: ClaimedDelivery): Date | null {
    const delays = this.#settings.retryDelaysMs;
    const delay = delays[Math.min(delivery.attempts, delays.length) - 1] ?? 0;
    const retryAt = this.#clock.now().getTime() + delay;
    return retryAt - delivery.firstAttemptAt.getTime() > this.#settings.retryForMs ? null : new Date(retryAt);
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#tick);
  }
}

/** A failed request's cause as a line: fetch wraps the socket's error in `cause`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.message}${cause}`.slice(0, 500);
}
