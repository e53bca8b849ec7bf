import { AsyncLocalStorage } from "node:async_hooks";
import { describe, expect, it } from "vitest";
import { CoalescedRun } from "../../src/platform/coalesced-run.ts";

/** A pass that waits until `release` is called, counting how many began. */
function gatedPasses() {
  const state = { began: 0, releases: [] as (() => void)[], failWith: undefined as Error | undefined };
  const pass = () => {
    state.began++;
    return new Promise<void>((resolve, reject) => {
      const failure = state.failWith;
      state.releases.push(() => (failure === undefined ? resolve() : reject(failure)));
    });
  };
  const releaseNext = async () => {
    state.releases.shift()!();
    // Let the run see the pass end and decide on the next one.
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { state, pass, releaseNext };
}

describe("CoalescedRun", () => {
  it("runs one pass at a time, and one more after it however often it was asked meanwhile", async () => {
    const { state, pass, releaseNext } = gatedPasses();
    const run = new CoalescedRun({ pass, failed: () => {}, stopped: () => false });
    run.request();
    run.request();
    expect(state.began).toBe(1);
    run.request();
    run.request();
    await releaseNext();
    expect(state.began).toBe(2);
    await releaseNext();
    expect(state.began).toBe(2);
    run.request();
    expect(state.began).toBe(3);
    await releaseNext();
  });

  it("hands a failed pass to failed, and the next request starts afresh", async () => {
    const { state, pass, releaseNext } = gatedPasses();
    const failures: unknown[] = [];
    const run = new CoalescedRun({ pass, failed: (error) => failures.push(error), stopped: () => false });
    state.failWith = new Error("database down");
    run.request();
    run.request();
    await releaseNext();
    // The failure ends the run: the request made during the failed pass is not run.
    expect(failures).toEqual([state.failWith]);
    expect(state.began).toBe(1);
    state.failWith = undefined;
    run.request();
    expect(state.began).toBe(2);
    await releaseNext();
  });

  it("runs no pass once stopped, not even one asked for during the last", async () => {
    const { state, pass, releaseNext } = gatedPasses();
    let stopped = false;
    const run = new CoalescedRun({ pass, failed: () => {}, stopped: () => stopped });
    run.request();
    run.request();
    stopped = true;
    await releaseNext();
    run.request();
    expect(state.began).toBe(1);
  });

  it("runs passes outside the async context of whoever asked", async () => {
    const storage = new AsyncLocalStorage<string>();
    const seen: (string | undefined)[] = [];
    const run = new CoalescedRun({ pass: async () => void seen.push(storage.getStore()), failed: () => {}, stopped: () => false });
    storage.run("a call's transaction", () => run.request());
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([undefined]);
  });
});
