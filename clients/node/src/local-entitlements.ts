import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type CallOptions, type Client } from "@connectrpc/connect";
import { AccountStatus } from "./gen/entitlements/v1/account_pb.js";
import {
  EntitlementService,
  GetPlanRequestSchema,
  GetPlanResponseSchema,
  HasFeatureRequestSchema,
  HasFeatureResponseSchema,
  type GetPlanResponse,
  type HasFeatureResponse,
  type WatchEntitlementsResponse,
} from "./gen/entitlements/v1/entitlement_service_pb.js";
import type { UserEntitlements } from "./gen/entitlements/v1/events_pb.js";
import { EntitlementSource } from "./gen/entitlements/v1/terms_pb.js";

export type LocalOptions = {
  /**
   * How long answers may come from memory after the watch stream dropped (it reconnects at
   * once, resuming where it was): past it, every call goes to the service until it is back.
   */
  readonly maxStalenessMs: number;
  /** Users kept in memory (1 to 1000, what one watch follows); the least recently asked about go first. */
  readonly maxUsers: number;
};

/** The service follows at most this many users per watch. */
export const MAX_LOCAL_USERS = 1000;
/** How long new users are gathered before the watch is opened again with them. */
const SUBSCRIBE_DELAY_MS = 20;
/** Waits before reconnecting a dropped watch: doubled each time, up to the last. */
const RECONNECT_DELAYS_MS = [50, 100, 250, 500, 1000, 2000];
/** `as_of` of local answers moves on in steps of this much (answers are remade once a step). */
const AS_OF_STEP_MS = 1000;
const FEATURE_CODE = /^[a-z][a-z0-9_]{0,63}$/;

type FeatureState = { readonly enabled: boolean; readonly source: EntitlementSource };
const NOT_GRANTED: FeatureState = Object.freeze({ enabled: false, source: EntitlementSource.PLAN });

/** One user as the watch last told of them, with the answers made from it. */
type Entry = {
  readonly entitlements: UserEntitlements;
  readonly revision: bigint;
  /** When the entitlements stop holding by themselves (Infinity: never). */
  readonly validUntilMs: number;
  readonly suspended: boolean;
  readonly features: Map<string, FeatureState>;
  /** Asked about since the last eviction sweep passed it (the clock algorithm's second chance). */
  used: boolean;
  /** The `as_of` step the answers below were made in. */
  answersStep: number;
  featureAnswers: Map<string, HasFeatureResponse>;
  planAnswer: GetPlanResponse | undefined;
};

function entryOf(entitlements: UserEntitlements, revision: bigint): Entry {
  return {
    entitlements,
    revision,
    validUntilMs: entitlements.validUntil === undefined ? Infinity : timestampDate(entitlements.validUntil).getTime(),
    suspended: entitlements.accountStatus === AccountStatus.SUSPENDED,
    features: new Map(entitlements.features.map((feature) => [feature.feature, { enabled: feature.enabled, source: feature.source }])),
    used: true,
    answersStep: -1,
    featureAnswers: new Map(),
    planAnswer: undefined,
  };
}

/**
 * HasFeature and GetPlan answered from memory for the users asked about, kept current by one
 * WatchEntitlements stream that pushes each change as it commits. A user not yet followed, an
 * answer past its `valid_until`, a `min_revision` newer than what is held, or a stream down for
 * longer than `maxStalenessMs` go to the service instead.
 */
export class LocalEntitlements {
  readonly #remote: Client<typeof EntitlementService>;
  readonly #options: LocalOptions;
  /** Followed users; Map order is the eviction sweep's order. */
  readonly #entries = new Map<string, Entry>();
  /** Users the current stream follows, and users to add to it. */
  #watched = new Set<string>();
  readonly #adding = new Set<string>();
  /** Every event of the watched users up to here has been applied: where a new stream resumes. */
  #position: bigint | undefined;
  #stream: AbortController | undefined;
  #connected = false;
  #downSince = Date.now();
  #reconnects = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  /** When the stream last confirmed what is held, in steps of AS_OF_STEP_MS. */
  #step = 0;
  #asOf: Timestamp = timestampFromMs(0);

  constructor(remote: Client<typeof EntitlementService>, options: LocalOptions) {
    if (!Number.isInteger(options.maxUsers) || options.maxUsers < 1 || options.maxUsers > MAX_LOCAL_USERS) {
      throw new RangeError(`local.maxUsers must be a whole number from 1 to ${MAX_LOCAL_USERS}`);
    }
    if (!(options.maxStalenessMs >= 0)) throw new RangeError("local.maxStalenessMs must be 0 or more");
    this.#remote = remote;
    this.#options = options;
  }

  /** Users held in memory now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Follows these users now rather than on their first call, and resolves once all of them are
   * held (a warm start); rejects when they are not within `timeoutMs`.
   */
  async follow(userIds: readonly string[], timeoutMs = 5000): Promise<void> {
    if (userIds.length > this.#options.maxUsers) throw new RangeError(`cannot follow ${userIds.length} users: local.maxUsers is ${this.#options.maxUsers}`);
    for (const userId of userIds) if (!this.#entries.has(userId)) this.#follow(userId);
    const deadline = Date.now() + timeoutMs;
    while (!userIds.every((userId) => this.#entries.has(userId))) {
      if (this.#closed) throw new Error("the local client is closed");
      if (Date.now() > deadline) throw new Error(`the watch did not bring every user within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  hasFeature(request: MessageInitShape<typeof HasFeatureRequestSchema>, options?: CallOptions): Promise<HasFeatureResponse> {
    const entry = this.#held(request.userId ?? "", request.minRevision);
    if (entry !== undefined) {
      const feature = request.feature ?? "";
      // Only well-formed features get an answer here: the service has the error for the others.
      const answer = entry.featureAnswers.get(feature) ?? (FEATURE_CODE.test(feature) ? this.#featureAnswer(entry, feature) : undefined);
      if (answer !== undefined) return Promise.resolve(answer);
    }
    return this.#remote.hasFeature(request, options);
  }

  #featureAnswer(entry: Entry, feature: string): HasFeatureResponse {
    const state = entry.features.get(feature) ?? NOT_GRANTED;
    const answer = create(HasFeatureResponseSchema, {
      enabled: state.enabled && !entry.suspended,
      planCode: entry.entitlements.plan?.code ?? "",
      source: state.source,
      revision: entry.revision,
      asOf: this.#asOf,
    });
    entry.featureAnswers.set(feature, answer);
    return answer;
  }

  getPlan(request: MessageInitShape<typeof GetPlanRequestSchema>, options?: CallOptions): Promise<GetPlanResponse> {
    const entry = this.#held(request.userId ?? "", request.minRevision);
    if (entry === undefined) return this.#remote.getPlan(request, options);
    const { entitlements } = entry;
    entry.planAnswer ??= create(GetPlanResponseSchema, {
      plan: entitlements.plan,
      subscription: entitlements.subscription,
      accountStatus: entitlements.accountStatus,
      scheduledChange: entitlements.scheduledChange,
      revision: entry.revision,
      asOf: this.#asOf,
    });
    return Promise.resolve(entry.planAnswer);
  }

  /** The user's entry when it may answer now; otherwise undefined (and the user is followed from now on). */
  #held(userId: string, minRevision: bigint | undefined): Entry | undefined {
    const entry = this.#entries.get(userId);
    if (entry === undefined) {
      this.#follow(userId);
      return undefined;
    }
    const now = Date.now();
    if (!this.#connected && now - this.#downSince > this.#options.maxStalenessMs) return undefined;
    if (now >= entry.validUntilMs || (minRevision !== undefined && entry.revision < minRevision)) return undefined;
    entry.used = true;
    if (entry.answersStep !== this.#step) {
      entry.answersStep = this.#step;
      entry.featureAnswers.clear();
      entry.planAnswer = undefined;
    }
    return entry;
  }

  /** Starts following a user: the stream is opened again with them shortly (users asked about together, once). */
  #follow(userId: string): void {
    if (this.#closed || this.#watched.has(userId) || this.#adding.has(userId)) return;
    while (this.#watched.size + this.#adding.size >= this.#options.maxUsers) this.#evictOne();
    this.#adding.add(userId);
    this.#timer ??= setTimeout(() => this.#subscribe(), SUBSCRIBE_DELAY_MS).unref();
  }

  /** Forgets the least recently asked-about user (CLOCK: each gets a second chance). */
  #evictOne(): void {
    for (const [userId, entry] of this.#entries) {
      this.#entries.delete(userId);
      if (entry.used) {
        entry.used = false;
        this.#entries.set(userId, entry);
      } else {
        this.#watched.delete(userId);
        return;
      }
    }
    // Followed but not held yet: the oldest of those goes, else the oldest about to be.
    const [first] = this.#watched.size > 0 ? this.#watched : this.#adding;
    if (first !== undefined) {
      this.#watched.delete(first);
      this.#adding.delete(first);
    }
  }

  /** Opens the stream (again) for every followed user, resuming from the last position when there is one. */
  #subscribe(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    this.#stream?.abort();
    const adding = [...this.#adding].filter((userId) => !this.#watched.has(userId));
    this.#adding.clear();
    this.#watched = new Set([...this.#watched, ...adding]);
    if (this.#watched.size === 0) return;
    const userIds = [...this.#watched];
    const request =
      this.#position === undefined
        ? { userIds }
        : { userIds, fromPosition: this.#position, snapshotUserIds: adding.filter((userId) => !this.#entries.has(userId)) };
    const stream = new AbortController();
    this.#stream = stream;
    void this.#consume(request, stream);
  }

  async #consume(request: { userIds: string[]; fromPosition?: bigint; snapshotUserIds?: string[] }, stream: AbortController): Promise<void> {
    const fresh = request.fromPosition === undefined;
    try {
      // No deadline: a watch lasts until it is opened again or closed.
      for await (const message of this.#remote.watchEntitlements(request, { signal: stream.signal, timeoutMs: 0 })) {
        if (this.#stream !== stream) return;
        this.#apply(message, fresh);
      }
    } catch (error) {
      if (this.#stream !== stream || stream.signal.aborted) return;
      // Resuming from a position the service no longer keeps: start again from snapshots.
      if (ConnectError.from(error).code === Code.OutOfRange) this.#position = undefined;
    }
    if (this.#stream !== stream || this.#closed) return;
    this.#stream = undefined;
    if (this.#connected) this.#downSince = Date.now();
    this.#connected = false;
    const delay = RECONNECT_DELAYS_MS[Math.min(this.#reconnects++, RECONNECT_DELAYS_MS.length - 1)]!;
    this.#timer ??= setTimeout(() => this.#subscribe(), delay).unref();
  }

  #apply(message: WatchEntitlementsResponse, fresh: boolean): void {
    this.#connected = true;
    this.#reconnects = 0;
    const { kind } = message;
    switch (kind.case) {
      case "snapshot": {
        const { userId, entitlements, revision, position } = kind.value;
        if (entitlements !== undefined && this.#watched.has(userId)) this.#entries.set(userId, entryOf(entitlements, revision));
        // Resuming, the events before a snapshot's position may still be on their way.
        if (fresh) this.#position = position;
        break;
      }
      case "event": {
        const { userId, entitlements, revision, position } = kind.value;
        const held = this.#entries.get(userId);
        if (entitlements !== undefined && held !== undefined && revision > held.revision) this.#entries.set(userId, entryOf(entitlements, revision));
        this.#position = position;
        break;
      }
      case "heartbeat":
        this.#position = kind.value.position;
        break;
    }
    this.#confirm();
  }

  /** What is held is current as of now: local answers say so, a step at a time. */
  #confirm(): void {
    const now = Date.now();
    const step = Math.floor(now / AS_OF_STEP_MS);
    if (step !== this.#step) {
      this.#step = step;
      this.#asOf = timestampFromMs(step * AS_OF_STEP_MS);
    }
  }

  /** Ends the stream; later calls all go to the service. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#stream?.abort();
    this.#stream = undefined;
    this.#connected = false;
    this.#entries.clear();
  }
}
