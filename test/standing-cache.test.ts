import { describe, expect, it } from "vitest";
import type { AccountStanding } from "../src/db/accounts.ts";
import { StandingCache } from "../src/standing-cache.ts";

const active: AccountStanding = { status: "active", tokensValidAfter: null, subscription: null };
const suspended: AccountStanding = { ...active, status: "suspended" };

function cache(now = { t: 0 }) {
  const standings = new StandingCache({ ttlMs: 1000, maxEntries: 2, now: () => now.t });
  standings.setEnabled(true);
  return standings;
}

describe("StandingCache", () => {
  it("answers from memory until the entry expires", async () => {
    const now = { t: 0 };
    const standings = cache(now);
    let loads = 0;
    const load = async () => (loads++, active);
    await standings.get("u", load);
    await standings.get("u", load);
    expect(loads).toBe(1);
    now.t = 999;
    await standings.get("u", load);
    expect(loads).toBe(1);
    now.t = 1000;
    await standings.get("u", load);
    expect(loads).toBe(2);
  });

  it("forgets an evicted account", async () => {
    const standings = cache();
    await standings.get("u", async () => active);
    standings.evict("u");
    expect(await standings.get("u", async () => suspended)).toBe(suspended);
  });

  it("does not keep a load that raced an eviction", async () => {
    const standings = cache();
    let release!: () => void;
    const slow = standings.get("u", () => new Promise<AccountStanding>((resolve) => (release = () => resolve(active))));
    standings.evict("u"); // the change committed while the old state was being read
    release();
    expect(await slow).toBe(active);
    expect(await standings.get("u", async () => suspended)).toBe(suspended);
  });

  it("caches nothing while notifications are off", async () => {
    const standings = cache();
    await standings.get("u", async () => active);
    standings.setEnabled(false);
    expect(standings.size).toBe(0);
    await standings.get("u", async () => active);
    expect(standings.size).toBe(0);
  });

  it("holds at most maxEntries, dropping the oldest", async () => {
    const standings = cache();
    for (const user of ["a", "b", "c"]) await standings.get(user, async () => active);
    expect(standings.size).toBe(2);
    let reloaded = false;
    await standings.get("a", async () => ((reloaded = true), active));
    expect(reloaded).toBe(true);
  });
});
