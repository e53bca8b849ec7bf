type Entry<V> = { readonly group: string; readonly value: V; readonly loadedAt: number };

/**
 * Values read from the database, held in this replica's memory so that checks need no query:
 * account standings (status, sessions, current subscription), keyed by user; usage amounts,
 * grouped by user and keyed by row. A change evicts the whole group (the user) here when it
 * commits, and in every other replica when the account's change notification arrives; entries
 * also expire after `ttlMs`, which bounds staleness when nothing tells this replica. While the
 * cache is disabled (for standings: while notifications cannot be heard) nothing is cached.
 */
export class ReplicaCache<V> {
  readonly #entries = new Map<string, Entry<V>>();
  /**
   * The load under way for each id, which every get of the id shares until it ends; an eviction
   * drops it (later gets load afresh), and a dropped load is not cached.
   */
  readonly #loads = new Map<string, Promise<V>>();
  /** The ids of each group that are cached or being loaded. */
  readonly #groups = new Map<string, Set<string>>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  #enabled: boolean;

  constructor(options: { ttlMs: number; maxEntries: number; enabled?: boolean; now?: () => number }) {
    this.#ttlMs = options.ttlMs;
    this.#maxEntries = options.maxEntries;
    this.#enabled = options.enabled ?? false;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value of `key` in `group` ("" for a group of one): cached, or loaded (and cached). */
  get(group: string, key: string, load: () => Promise<V>): Promise<V> {
    const id = `${group}\u0000${key}`;
    const entry = this.#entries.get(id);
    if (entry !== undefined && this.#now() - entry.loadedAt < this.#ttlMs) return Promise.resolve(entry.value);
    const pending = this.#loads.get(id);
    if (pending !== undefined) return pending;
    const loaded = load();
    this.#idsOf(group).add(id);
    const loading: Promise<V> = loaded.then(
      (value) => {
        // Still this load's turn unless an eviction took it.
        const current = this.#loads.get(id) === loading;
        if (current) this.#loads.delete(id);
        if (current && this.#enabled) this.#store(group, id, value);
        else this.#forgetIfIdle(group, id);
        return value;
      },
      (error: unknown) => {
        if (this.#loads.get(id) === loading) this.#loads.delete(id);
        this.#forgetIfIdle(group, id);
        throw error;
      },
    );
    this.#loads.set(id, loading);
    return loading;
  }

  #store(group: string, id: string, value: V): void {
    this.#entries.delete(id);
    if (this.#entries.size >= this.#maxEntries) {
      // Maps iterate in insertion order: the first entry is the oldest load.
      const [oldest, { group: oldestGroup }] = this.#entries.entries().next().value!;
      this.#entries.delete(oldest);
      this.#forgetIfIdle(oldestGroup, oldest);
    }
    this.#entries.set(id, { group, value, loadedAt: this.#now() });
  }

  /** Forgets every value of the group, and keeps no load of it that is under way. */
  evict(group: string): void {
    for (const id of this.#groups.get(group) ?? []) {
      this.#entries.delete(id);
      this.#loads.delete(id);
    }
    this.#groups.delete(group);
  }

  /** Turning it off forgets everything, loads under way included. */
  setEnabled(enabled: boolean): void {
    this.#enabled = enabled;
    if (!enabled) {
      this.#entries.clear();
      this.#loads.clear();
      this.#groups.clear();
    }
  }

  #idsOf(group: string): Set<string> {
    let ids = this.#groups.get(group);
    if (ids === undefined) this.#groups.set(group, (ids = new Set()));
    return ids;
  }

  #forgetIfIdle(group: string, id: string): void {
    if (this.#entries.has(id) || this.#loads.has(id)) return;
    const ids = this.#groups.get(group);
    ids?.delete(id);
    if (ids?.size === 0) this.#groups.delete(group);
  }
}
