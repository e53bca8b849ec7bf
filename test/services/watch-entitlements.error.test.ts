import { Code } from "@connectrpc/connect";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { deleteOldEvents } from "../../src/db/entitlement-events.ts";
import { inMemoryClient, userToken } from "../support/service.ts";
import { createWatchingService, subscriptionClient, watchError, WatchReader, type WatchingService } from "../support/watching-service.ts";

let service: WatchingService;
beforeAll(async () => {
  service = await createWatchingService({ watchMaxStreams: 3, watchHeartbeatMs: 200 });
});

const readers: Pick<WatchReader, "close">[] = [];
function watch(userIds: string[], fromPosition?: bigint): WatchReader {
  const reader = WatchReader.of(service.client, fromPosition === undefined ? { userIds } : { userIds, fromPosition });
  readers.push(reader);
  return reader;
}
afterEach(() => readers.splice(0).forEach((reader) => reader.close()));


describe("WatchEntitlements refuses", () => {
  it("no users, more than 1000, or a malformed id, as invalid_argument naming the field", async () => {
    expect(await watchError(watch([]))).toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringContaining("user_ids") });
    const many = Array.from({ length: 1001 }, (_, index) => `u${index}`);
    expect(await watchError(watch(many))).toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringContaining("1 to 1000") });
    expect(await watchError(watch(["ok", ""]))).toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringContaining("user_ids[1]") });
    expect(await watchError(watch(["ok"], -1n))).toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringContaining("from_position") });
    const stranger = WatchReader.of(service.client, { userIds: ["ok"], fromPosition: 0n, snapshotUserIds: ["other"] });
    readers.push(stranger);
    expect(await watchError(stranger)).toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringContaining("snapshot_user_ids[0]") });
  });

  it("a position past the feed's head, or older than it keeps, as out_of_range", async () => {
    expect(await watchError(watch(["w-x"], 1_000_000n))).toMatchObject({ code: Code.OutOfRange });
    const reader = watch(["w-old"]);
    await reader.next();
    await service.client.upgradePlan({ userId: "w-old", planCode: "pro" });
    const event = await reader.nextEvent();
    await deleteOldEvents(service.pool, new Date(Date.now() + 86_400_000 * 365 * 10));
    expect(await watchError(watch(["w-old"], event.position - 1n))).toMatchObject({ code: Code.OutOfRange, rawMessage: expect.stringContaining("older than the feed keeps") });
    // The position of the last deleted event itself lost nothing.
    expect(await watch(["w-old"], event.position).quietFor(300)).toBe(true);
  });

  it("a watch beyond WATCH_MAX_STREAMS as resource_exhausted, and takes one again once a watch ends", async () => {
    const open = [watch(["a"]), watch(["b"]), watch(["c"])];
    await Promise.all(open.map((reader) => reader.next()));
    expect(await watchError(watch(["d"]))).toMatchObject({ code: Code.ResourceExhausted, rawMessage: expect.stringContaining("WATCH_MAX_STREAMS") });
    open[0]!.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await expect(watch(["d"]).next()).resolves.toMatchObject({ kind: { case: "snapshot" } });
  });

  it("a user's own stream beyond half of WATCH_MAX_STREAMS, keeping the rest for backends", async () => {
    const own = (userId: string) => {
      const reader = new WatchReader(async function* (signal) {
        yield* subscriptionClient(service.composed.served, await userToken(userId)).watchMySubscription({}, { signal });
      });
      readers.push(reader);
      return reader;
    };
    await expect(own("w-own-a").next()).resolves.toMatchObject({ kind: { case: "snapshot" } });
    const refused = await watchError(own("w-own-b"));
    expect([refused.code, refused.rawMessage]).toEqual([Code.ResourceExhausted, expect.stringContaining("half of WATCH_MAX_STREAMS")]);
    await expect(watch(["w-backend"]).next()).resolves.toMatchObject({ kind: { case: "snapshot" } });
  });

  it("without a service token, as unauthenticated", async () => {
    const anonymous = WatchReader.of(inMemoryClient(service.composed.served, null), { userIds: ["w-x"] });
    readers.push(anonymous);
    expect(await watchError(anonymous)).toMatchObject({ code: Code.Unauthenticated });
  });
});

describe("WatchEntitlements keeps a quiet stream alive", () => {
  it("with heartbeats that carry a position to resume from", async () => {
    const reader = watch(["w-quiet"]);
    await reader.next();
    const heartbeat = await reader.next(2000);
    expect(heartbeat.kind.case).toBe("heartbeat");
    const position = heartbeat.kind.case === "heartbeat" ? heartbeat.kind.value.position : -1n;
    await service.client.upgradePlan({ userId: "w-quiet", planCode: "pro" });
    const event = await reader.nextEvent();
    expect(event.position).toBeGreaterThan(position);
    expect(await watch(["w-quiet"], position).nextEvent()).toMatchObject({ id: event.id });
  });
});

describe("A replica shutting down", () => {
  it("ends its watches at once with unavailable, and takes no new one", async () => {
    const reader = watch(["w-last"]);
    await reader.next();
    service.composed.feed.close();
    expect(await watchError(reader)).toMatchObject({ code: Code.Unavailable, rawMessage: expect.stringContaining("resume") });
    expect(await watchError(watch(["w-last"]))).toMatchObject({ code: Code.Unavailable });
  });
});
