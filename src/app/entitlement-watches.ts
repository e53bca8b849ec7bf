import type { DatabasePool } from "slonik";
import { findAccountStanding } from "../db/accounts.ts";
import { entitlementEventsAfter, feedBounds, type EntitlementEventRecord } from "../db/entitlement-events.ts";
import { entitlementView, type EntitlementView } from "../domain/entitlement-view.ts";
import { CapacityError, OutOfRangeError } from "../domain/errors.ts";
import type { ChangeFeed, FeedSubscriber } from "./change-feed.ts";
import type { Entitlements } from "./entitlements.ts";

/** What a watch sends: a user's entitlements as they stand, an event, or a sign of life. */
export type WatchItem =
  | { readonly kind: "snapshot"; readonly userId: string; readonly view: EntitlementView; readonly revision: bigint; readonly position: bigint }
  | { readonly kind: "event"; readonly event: EntitlementEventRecord }
  /** Every event of the watch's users up to `position` has been sent: a point to resume from. */
  | { readonly kind: "heartbeat"; readonly position: bigint };

export type WatchSettings = {
  readonly heartbeatMs: number;
  /** Events waiting for a slow watcher beyond which its watch is ended (resource_exhausted). */
  readonly maxBacklog: number;
  /** Users' own watches (watchOwn) open here at most, all users together: backends keep the rest. */
  readonly maxOwnWatches: number;
};

/** WatchMySubscription streams one user may hold open on a replica. */
export const MAX_OWN_WATCHES = 5;

/** Events read per query while a watch catches up from a position. */
const CATCH_UP_BATCH = 1000;
/** Snapshots read at once. */
const SNAPSHOT_READS = 16;

/**
 * WatchEntitlements: snapshots of the users then their events as they commit, or, from a
 * position, the events after it (read from the database) then live ones, gap-free and in order.
 */
export class EntitlementWatches {
  readonly #pool: DatabasePool;
  readonly #feed: ChangeFeed;
  readonly #entitlements: Entitlements;
  readonly #settings: WatchSettings;
  /** Each user's own watches open here (watchOwn), and all of them together. */
  readonly #ownWatches = new Map<string, number>();
  #ownWatchesInAll = 0;

  constructor(pool: DatabasePool, feed: ChangeFeed, entitlements: Entitlements, settings: WatchSettings) {
    this.#pool = pool;
    this.#feed = feed;
    this.#entitlements = entitlements;
    this.#settings = settings;
  }

  /**
   * A user's watch of themselves (WatchMySubscription): as `watch` of that one user, at most
   * MAX_OWN_WATCHES at once per user and `maxOwnWatches` of all users, so signed-in users, who
   * anyone can be, never take the WATCH_MAX_STREAMS that backends' watches need.
   */
  async *watchOwn(userId: string, fromPosition: bigint | undefined, signal: AbortSignal): AsyncGenerator<WatchItem> {
    const open = this.#ownWatches.get(userId) ?? 0;
    if (open >= MAX_OWN_WATCHES) throw new CapacityError(`at most ${MAX_OWN_WATCHES} streams of one user at once; close one first`);
    if (this.#ownWatchesInAll >= this.#settings.maxOwnWatches) {
      throw new CapacityError(`this replica serves at most ${this.#settings.maxOwnWatches} users' own streams (half of WATCH_MAX_STREAMS); retry later or through another replica`);
    }
    this.#ownWatches.set(userId, open + 1);
    this.#ownWatchesInAll += 1;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#ownWatchesInAll -= 1;
      const left = (this.#ownWatches.get(userId) ?? 1) - 1;
      if (left === 0) this.#ownWatches.delete(userId);
      else this.#ownWatches.set(userId, left);
    };
    // A caller that goes away may leave this generator suspended, never finished: its place is
    // given back when the call's signal aborts.
    signal.addEventListener("abort", release, { once: true });
    try {
      yield* this.watch([userId], fromPosition, signal);
    } finally {
      signal.removeEventListener("abort", release);
      release();
    }
  }

  /**
   * Snapshots of `userIds` then their events; from `fromPosition`, the events after it, with
   * snapshots of `snapshotUserIds` (users added to a resumed watch) first.
   */
  async *watch(userIds: readonly string[], fromPosition: bigint | undefined, signal: AbortSignal, snapshotUserIds: readonly string[] = []): AsyncGenerator<WatchItem> {
    if (fromPosition !== undefined) await this.#checkPosition(fromPosition);
    const backlog: EntitlementEventRecord[] = [];
    let wake: (() => void) | undefined;
    let ended: Error | undefined;
    const subscriber: FeedSubscriber = {
      userIds: new Set(userIds),
      after: fromPosition ?? this.#feed.head,
      live: fromPosition === undefined,
      deliver: (event) => {
        if (backlog.length >= this.#settings.maxBacklog) {
          this.#feed.unsubscribe(subscriber);
          subscriber.end(new CapacityError(`the watcher fell ${backlog.length} events behind; resume from the last position it received`));
        } else {
          backlog.push(event);
        }
        wake?.();
      },
      end: (error) => {
        ended = error;
        wake?.();
      },
    };
    this.#feed.subscribe(subscriber);
    // A caller gone frees its place at once, even while its stream waits to be read.
    const onAbort = () => {
      this.#feed.unsubscribe(subscriber);
      wake?.();
    };
    signal.addEventListener("abort", onAbort);
    try {
      // Events of a user up to the revision already sent are not sent again.
      const sent = new Map<string, bigint>();
      const unsent = (event: EntitlementEventRecord) => event.revision > (sent.get(event.userId) ?? -1n);
      // Fresh, every user as of the position the watch started at; resumed, the users added.
      const snapshotted = fromPosition === undefined ? userIds : snapshotUserIds;
      for await (const snapshot of this.#snapshots(snapshotted, fromPosition === undefined ? subscriber.after : this.#feed.head)) {
        sent.set(snapshot.userId, snapshot.revision);
        yield snapshot;
      }
      if (fromPosition !== undefined) {
        for await (const item of this.#catchUp(subscriber, fromPosition)) {
          if (item.kind !== "event" || unsent(item.event)) yield item;
        }
      }
      let heartbeatAt = Date.now() + this.#settings.heartbeatMs;
      for (;;) {
        if (signal.aborted) return;
        if (ended !== undefined) throw ended;
        const event = backlog.shift();
        if (event !== undefined) {
          if (unsent(event)) {
            sent.set(event.userId, event.revision);
            yield { kind: "event", event };
          }
          continue;
        }
        if (Date.now() >= heartbeatAt) {
          heartbeatAt = Date.now() + this.#settings.heartbeatMs;
          yield { kind: "heartbeat", position: this.#feed.head };
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, heartbeatAt - Date.now());
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#feed.unsubscribe(subscriber);
    }
  }

  /** A position to resume from must still be kept, and reached. */
  async #checkPosition(position: bigint): Promise<void> {
    const { head, prunedThrough } = await feedBounds(this.#pool);
    if (position < prunedThrough) {
      throw new OutOfRangeError(`from_position ${position} is older than the feed keeps (events through ${prunedThrough} were deleted); watch without it to start from snapshots`);
    }
    if (position > head) throw new OutOfRangeError(`from_position ${position} is past the feed's last position, ${head}`);
  }

  /** The events after `from` that the feed has passed, from the database; then the watch goes live. */
  async *#catchUp(subscriber: FeedSubscriber, from: bigint): AsyncGenerator<WatchItem> {
    const userIds = [...subscriber.userIds];
    let after = from;
    for (;;) {
      const through = this.#feed.head;
      if (after >= through) {
        // No turn of the event loop between reading the head and going live: nothing falls between.
        subscriber.after = after;
        subscriber.live = true;
        return;
      }
      const events = await entitlementEventsAfter(this.#pool, { after, through, userIds, limit: CATCH_UP_BATCH });
      for (const event of events) yield { kind: "event", event };
      after = events.length === CATCH_UP_BATCH ? events.at(-1)!.position : through;
    }
  }

  /** Each user's entitlements read now, current to `position` (every event up to it is in them). */
  async *#snapshots(userIds: readonly string[], position: bigint): AsyncGenerator<WatchItem & { kind: "snapshot" }> {
    for (let start = 0; start < userIds.length; start += SNAPSHOT_READS) {
      const chunk = userIds.slice(start, start + SNAPSHOT_READS);
      yield* await Promise.all(
        chunk.map(async (userId) => {
          const at = this.#entitlements.now();
          const standing = await findAccountStanding(this.#pool, userId, at);
          const current = await this.#entitlements.planOf(userId, standing, at);
          return { kind: "snapshot" as const, userId, view: entitlementView(current, at), revision: standing.revision, position };
        }),
      );
    }
  }
}
