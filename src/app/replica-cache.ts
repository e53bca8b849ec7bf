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
  /**
   * The ids of each group that are cached or being loaded: the id itself while it is the only
   * one (a standing's group, the user, holds one), a Set from the second on (docs/performance.md:
   * a Set per cached user was a quarter of what one held).
   */
  readonly #groups = new Map<string, string | Set<string>>();
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
    this.#addId(group, id);
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
    const ids = this.#groups.get(group);
    for (const id of typeof ids === "string" ? [ids] : (ids ?? [])) {
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

  #addId(group: string, id: string): void {
    const ids = this.#groups.get(group);
    if (ids === undefined || ids === id) this.#groups.set(group, id);
    else if (typeof ids === "string") this.#groups.set(group, new Set([ids, id]));
    else ids.add(id);
  }

  #forgetIfIdle(group: string, id: string): void {
    if (this.#entries.has(id) || this.#loads.has(id)) return;
    const ids = this.#groups.get(group);
    if (ids === id) {
      this.#groups.delete(group);
    } else if (typeof ids === "object") {
      ids.delete(id);
      if (ids.size === 0) this.#groups.delete(group);
    }
  }
}
