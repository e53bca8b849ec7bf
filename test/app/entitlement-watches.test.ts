import { sql } from "slonik";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EntitlementWatches, type WatchItem } from "../../src/app/entitlement-watches.ts";
import { changeListener, type ComposedService } from "../../src/compose.ts";
import { CapacityError } from "../../src/domain/errors.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { composeTestService, inMemoryClient } from "../support/service.ts";

let database: TestDatabase;
let service: ComposedService;
let listener: ReturnType<typeof changeListener>;
const clock = new TestClock("2026-03-15T12:00:00Z");
const client = () => inMemoryClient(service.served);

beforeAll(async () => {
  database = await createTestDatabase();
  service = await composeTestService(database.pool, clock);
  await service.feed.start();
  listener = changeListener(service, database.sessionUrl, createLogger("silent"));
  await listener.start();
});
afterAll(async () => {
  service.feed.close();
  await listener.stop();
});

async function nextOf(watch: AsyncGenerator<WatchItem>, timeoutMs = 5000): Promise<WatchItem> {
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no item in time")), timeoutMs).unref());
  const result = await Promise.race([watch.next(), timeout]);
  if (result.done === true) throw new Error("the watch ended");
  return result.value;
}

describe("a watch", () => {
  it("whose reader falls more than its bound behind is ended at once with a CapacityError, not buffered on", async () => {
    const watches = new EntitlementWatches(database.pool, service.feed, service.entitlements, { heartbeatMs: 60_000, maxBacklog: 3, maxOwnWatches: 10 });
    const watch = watches.watch(["slow-reader"], undefined, new AbortController().signal);
    expect((await nextOf(watch)).kind).toBe("snapshot");
    const before = service.feed.watches;
    // Five changes while nobody reads: the fourth overflows the backlog of three.
    for (const planCode of ["pro", "enterprise", "pro", "enterprise", "pro"]) await client().upgradePlan({ userId: "slow-reader", planCode });
    const deadline = Date.now() + 5000;
    while (service.feed.watches === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(service.feed.watches).toBe(before - 1);
    const drained: WatchItem[] = [];
    const ended = await (async () => {
      for (;;) drained.push(await nextOf(watch));
    })().catch((error: unknown) => error);
    // Cut off at once, backlog and all: the reader resumes from the last position it received.
    expect(drained).toEqual([]);
    expect(ended).toBeInstanceOf(CapacityError);
  });

  it("gets every event when the replica's notification connection is lost, once the feed finds them", async () => {
    const reader = new EntitlementWatches(database.pool, service.feed, service.entitlements, { heartbeatMs: 60_000, maxBacklog: 100, maxOwnWatches: 10 });
    const watch = reader.watch(["unheard"], undefined, new AbortController().signal);
    await nextOf(watch);
    await database.pool.query(sql.unsafe`
      select pg_terminate_backend(pid) from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and query ilike 'listen%'
    `);
    await client().upgradePlan({ userId: "unheard", planCode: "pro" });
    await client().upgradePlan({ userId: "unheard", planCode: "enterprise" });
    const first = await nextOf(watch);
    const second = await nextOf(watch);
    expect([first, second].map((item) => (item.kind === "event" ? item.event.revision : undefined))).toEqual([1n, 2n]);
  });
});
