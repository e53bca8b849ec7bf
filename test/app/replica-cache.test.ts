import { NO_TERMS } from "../../src/domain/terms.ts";
import { describe, expect, it } from "vitest";
import type { AccountStanding } from "../../src/db/accounts.ts";
import { ReplicaCache } from "../../src/app/replica-cache.ts";

const active: AccountStanding = { status: "active", tokensValidAfter: null, revision: 0n, readAt: new Date(0), subscription: null, trial: null, scheduledChange: null, terms: NO_TERMS };
const suspended: AccountStanding = { ...active, status: "suspended" };

function cache(now = { t: 0 }) {
  return new ReplicaCache<AccountStanding>({ ttlMs: 1000, maxEntries: 2, enabled: true, now: () => now.t });
}

/** A load that answers when told to. */
function deferred<V>(value: V) {
  let release!: () => void;
  const load = () => new Promise<V>((resolve) => (release = () => resolve(value)));
  return { load, release: () => release() };
}

describe("ReplicaCache", () => {
  it("answers from memory until the entry expires", async () => {
    const now = { t: 0 };
    const standings = cache(now);
    let loads = 0;
    const load = async () => (loads++, active);
    await standings.get("u", "", load);
    await standings.get("u", "", load);
    expect(loads).toBe(1);
    now.t = 999;
    await standings.get("u", "", load);
    expect(loads).toBe(1);
    now.t = 1000;
    await standings.get("u", "", load);
    expect(loads).toBe(2);
  });

  it("shares one load among the gets that arrive while it runs, and caches it", async () => {
    const standings = cache();
    const slow = deferred(active);
    let loads = 0;
    const load = () => (loads++, slow.load());
    const gets = Array.from({ length: 64 }, () => standings.get("u", "", load));
    slow.release();
    expect(await Promise.all(gets)).toEqual(gets.map(() => active));
    expect(loads).toBe(1);
    await standings.get("u", "", load);
    expect(loads).toBe(1);
  });

  it("forgets an evicted group, every key of it, and no other group", async () => {
    const usage = new ReplicaCache<bigint>({ ttlMs: 1000, maxEntries: 10, enabled: true });
    await usage.get("u", "jobs", async () => 1n);
    await usage.get("u", "api_calls", async () => 2n);
    await usage.get("v", "jobs", async () => 3n);
    usage.evict("u");
    expect(await usage.get("u", "jobs", async () => 10n)).toBe(10n);
    expect(await usage.get("u", "api_calls", async () => 20n)).toBe(20n);
    expect(await usage.get("v", "jobs", async () => 30n)).toBe(3n);
  });

  it("does not keep a load that raced an eviction", async () => {
    const standings = cache();
    const slow = deferred(active);
    const pending = standings.get("u", "", slow.load);
    standings.evict("u"); // the change committed while the old state was being read
    slow.release();
    expect(await pending).toBe(active);
    expect(await standings.get("u", "", async () => suspended)).toBe(suspended);
  });

  it("keeps the later of two loads of one key, whatever order they end in", async () => {
    const standings = cache();
    const older = deferred(active);
    const pending = standings.get("u", "", older.load);
    standings.evict("u");
    await standings.get("u", "", async () => suspended); // read after the change, cached
    older.release(); // the read from before the change ends last
    await pending;
    expect(await standings.get("u", "", async () => active)).toBe(suspended);
  });

  it("caches nothing while disabled, and forgets everything when disabled", async () => {
    const standings = cache();
    await standings.get("u", "", async () => active);
    standings.setEnabled(false);
    expect(standings.size).toBe(0);
    await standings.get("u", "", async () => active);
    expect(standings.size).toBe(0);
  });

  it("caches nothing of a failed load", async () => {
    const standings = cache();
    await expect(standings.get("u", "", async () => Promise.reject(new Error("down")))).rejects.toThrow("down");
    expect(await standings.get("u", "", async () => suspended)).toBe(suspended);
  });

  it("holds at most maxEntries, dropping the oldest", async () => {
    const standings = cache();
    for (const user of ["a", "b", "c"]) await standings.get(user, "", async () => active);
    expect(standings.size).toBe(2);
    let reloaded = false;
    await standings.get("a", "", async () => ((reloaded = true), active));
    expect(reloaded).toBe(true);
  });
});
