import type { AccountStanding } from "./db/accounts.ts";

/**
 * Account standings (status, sessions, current subscription) held in memory, so entitlement
 * checks need no query. Every change is NOTIFYed by the transaction that makes it and evicts the
 * entry in every replica; entries also expire after `ttlMs`, which bounds staleness should a
 * notification be missed. While the notification connection is down nothing is cached.
 */
export class StandingCache {
  readonly #entries = new Map<string, { readonly standing: AccountStanding; readonly loadedAt: number }>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** Bumped by every eviction: a load that raced one is not cached (it may predate the change). */
  #epoch = 0;
  #enabled = false;

  constructor(options: { ttlMs: number; maxEntries: number; now?: () => number }) {
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  async get(userId: string, load: () => Promise<AccountStanding>): Promise<AccountStanding> {
    const entry = this.#entries.get(userId);
    if (entry !== undefined && this.#now() - entry.loadedAt < this.#ttlMs) return entry.standing;
    const epoch = this.#epoch;
    const standing = await load();
    if (this.#enabled && epoch === this.#epoch) {
      this.#entries.delete(userId);
      if (this.#entries.size >= this.#maxEntries) {
        // Maps iterate in insertion order: the first key is the oldest load.
        this.#entries.delete(this.#entries.keys().next().value!);
      }
      this.#entries.set(userId, { standing, loadedAt: this.#now() });
    }
    return standing;
  }

  evict(userId: string): void {
    this.#epoch++;
    this.#entries.delete(userId);
  }

  /** Caches only while change notifications arrive; turning it off forgets everything. */
  setEnabled(enabled: boolean): void {
    this.#epoch++;
    this.#enabled = enabled;
    if (!enabled) this.#entries.clear();
  }
}
