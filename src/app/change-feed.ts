import type { DatabasePool } from "slonik";
import { entitlementEventsAfter, feedBounds, sequenceEntitlementEvents, type EntitlementEventRecord } from "../db/entitlement-events.ts";
import { CapacityError, ShuttingDownError } from "../domain/errors.ts";
import { CoalescedRun } from "../platform/coalesced-run.ts";
import type { Logger } from "../platform/logger.ts";

/** Events read (or sequenced) per query. */
const FEED_BATCH = 1000;

/** One open watch, as the feed serves it: the users it follows and where it stands. */
export type FeedSubscriber = {
  readonly userIds: ReadonlySet<string>;
  /** Live events are delivered only past this position (the watch has the ones up to it). */
  after: bigint;
  /** While false (catching up from the database), live events are left for the catch-up to read. */
  live: boolean;
  deliver(event: EntitlementEventRecord): void;
  /** Ends the watch with `error`. */
  end(error: Error): void;
};

/**
 * This replica's view of the change feed. It gives committed events their positions (any replica
 * may; they take turns in the database) when the outbox tells of one, reads the events past its
 * head when the feed tells it moved, and hands each to the open watches of its user, in position
 * order. A tick does both every `pollMs`, so a lost notification delays an event, never loses it.
 */
export class ChangeFeed {
  readonly #pool: DatabasePool;
  readonly #maxWatches: number;
  readonly #pollMs: number;
  readonly #subscribers = new Map<string, Set<FeedSubscriber>>();
  #watches = 0;
  #head = 0n;
  readonly #sequencing: CoalescedRun;
  readonly #reading: CoalescedRun;
  #tick: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(pool: DatabasePool, logger: Logger, options: { readonly maxWatches: number; readonly pollMs: number }) {
    this.#pool = pool;
    this.#maxWatches = options.maxWatches;
    this.#pollMs = options.pollMs;
    const failed = (error: unknown) => logger.warn({ err: error }, "change feed: reading or sequencing events failed; retrying on the next tick");
    const stopped = () => this.#closed;
    this.#sequencing = new CoalescedRun({
      pass: async () => {
        for (;;) {
          const given = await sequenceEntitlementEvents(this.#pool, FEED_BATCH);
          // What this replica sequenced it reads at once, without waiting for the feed's notification.
          if (given > 0) this.read();
          if (given < FEED_BATCH || this.#closed) return;
        }
      },
      failed,
      stopped,
    });
    this.#reading = new CoalescedRun({
      pass: async () => {
        for (;;) {
          const events = await entitlementEventsAfter(this.#pool, { after: this.#head, through: BigInt(Number.MAX_SAFE_INTEGER), limit: FEED_BATCH });
          for (const event of events) this.#dispatch(event);
          if (events.length < FEED_BATCH || this.#closed) return;
        }
      },
      failed,
      stopped,
    });
  }

  /** Starts at the feed's head (what came before is read by the watches that ask for it). */
  async start(): Promise<void> {
    this.#head = (await feedBounds(this.#pool)).head;
    this.#tick = setInterval(() => {
      this.sequence();
      this.read();
    }, this.#pollMs).unref();
  }

  /** The last position handed to the watches. */
  get head(): bigint {
    return this.#head;
  }

  get watches(): number {
    return this.#watches;
  }

  /** An event was written somewhere: give it its position (once any sequencing under way ends). */
  sequence(): void {
    this.#sequencing.request();
  }

  /** The feed moved (to `head`, when known): read and hand out what lies past this replica's head. */
  read(head?: bigint): void {
    if (head !== undefined && head <= this.#head) return;
    this.#reading.request();
  }

  #dispatch(event: EntitlementEventRecord): void {
    this.#head = event.position;
    for (const subscriber of this.#subscribers.get(event.userId) ?? []) {
      if (subscriber.live && event.position > subscriber.after) {
        subscriber.after = event.position;
        subscriber.deliver(event);
      }
    }
  }

  /** Opens a watch; beyond this replica's bound, a CapacityError. */
  subscribe(subscriber: FeedSubscriber): void {
    if (this.#closed) throw new ShuttingDownError("this replica is shutting down; watch through another one");
    if (this.#watches >= this.#maxWatches) {
      throw new CapacityError(`this replica serves at most ${this.#maxWatches} watches (WATCH_MAX_STREAMS); retry later or through another replica`);
    }
    this.#watches++;
    for (const userId of subscriber.userIds) {
      let set = this.#subscribers.get(userId);
      if (set === undefined) this.#subscribers.set(userId, (set = new Set()));
      set.add(subscriber);
    }
  }

  unsubscribe(subscriber: FeedSubscriber): void {
    let found = false;
    for (const userId of subscriber.userIds) {
      const set = this.#subscribers.get(userId);
      if (set?.delete(subscriber) === true) found = true;
      if (set?.size === 0) this.#subscribers.delete(userId);
    }
    if (found) this.#watches--;
  }

  /** Stops reading and ends every watch at once with `unavailable`: their clients resume elsewhere. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#tick);
    const error = new ShuttingDownError("this replica is shutting down; resume the watch through another one from its last position");
    const all = new Set([...this.#subscribers.values()].flatMap((set) => [...set]));
    for (const subscriber of all) {
      this.unsubscribe(subscriber);
      subscriber.end(error);
    }
  }
}
