import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { AccountStatus } from "../../gen/entitlements/v1/account_pb.js";
import { EntitlementSource } from "../../gen/entitlements/v1/terms_pb.js";
import { createWatchingService, WatchReader, type WatchingService } from "../support/watching-service.ts";

let service: WatchingService;
beforeAll(async () => {
  service = await createWatchingService();
});

const readers: WatchReader[] = [];
function watch(userIds: string[], fromPosition?: bigint): WatchReader {
  const reader = WatchReader.of(service.client, fromPosition === undefined ? { userIds } : { userIds, fromPosition });
  readers.push(reader);
  return reader;
}
afterEach(() => readers.splice(0).forEach((reader) => reader.close()));

describe("WatchEntitlements from snapshots", () => {
  it("sends each user's entitlements first, then every change to them as it commits", async () => {
    const reader = watch(["w-ann", "w-bob"]);
    const first = await reader.next();
    const second = await reader.next();
    const snapshots = [first, second].map((message) => (message.kind.case === "snapshot" ? message.kind.value : undefined));
    expect(snapshots.map((snapshot) => [snapshot?.userId, snapshot?.revision, snapshot?.entitlements?.plan?.code])).toEqual([
      ["w-ann", 0n, "free"],
      ["w-bob", 0n, "free"],
    ]);
    expect(snapshots[0]?.entitlements?.accountStatus).toBe(AccountStatus.ACTIVE);

    await service.client.upgradePlan({ userId: "w-ann", planCode: "pro" });
    const upgraded = await reader.nextEvent();
    expect(upgraded).toMatchObject({ type: "entitlements.plan_changed", userId: "w-ann", revision: 1n });
    expect(upgraded.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(upgraded.position).toBeGreaterThan(snapshots[0]!.position);
    expect(upgraded.entitlements?.plan?.code).toBe("pro");
    expect(upgraded.entitlements?.subscription?.planCode).toBe("pro");
    expect(upgraded.entitlements?.limits.find((limit) => limit.metric === "jobs")).toMatchObject({ limit: 500n, source: EntitlementSource.PLAN });

    await service.client.setFeatureOverride({ userId: "w-bob", feature: "sso", enabled: true, reason: "pilot" });
    const overridden = await reader.nextEvent();
    expect(overridden).toMatchObject({ type: "entitlements.override_set", userId: "w-bob", revision: 1n });
    expect(overridden.position).toBeGreaterThan(upgraded.position);
    expect(overridden.entitlements?.features.find((feature) => feature.feature === "sso")).toMatchObject({ enabled: true, source: EntitlementSource.OVERRIDE });
  });

  it("sends nothing about users it does not watch, and nothing for a call that changes nothing", async () => {
    const reader = watch(["w-carl"]);
    await reader.next();
    await service.client.upgradePlan({ userId: "w-someone-else", planCode: "pro" });
    await service.client.cancelScheduledChange({ userId: "w-carl" });
    expect(await reader.quietFor(300)).toBe(true);
    await service.client.upgradePlan({ userId: "w-carl", planCode: "pro" });
    expect(await reader.nextEvent()).toMatchObject({ userId: "w-carl", revision: 1n });
  });

  it("states in the snapshot the revision it includes, and sends no event the snapshot already holds", async () => {
    await service.client.upgradePlan({ userId: "w-dora", planCode: "pro" });
    await service.client.grantUsage({ userId: "w-dora", metric: "jobs", amount: 5n, reason: "goodwill", idempotencyKey: "dora-grant" });
    const reader = watch(["w-dora"]);
    const snapshot = await reader.next();
    expect(snapshot.kind.case === "snapshot" && snapshot.kind.value.revision).toBe(2n);
    expect(await reader.quietFor(300)).toBe(true);
  });
});

describe("WatchEntitlements from a position", () => {
  it("sends the events after the position, in order and with no snapshot, then live ones", async () => {
    const live = watch(["w-eve"]);
    await live.next();
    await service.client.upgradePlan({ userId: "w-eve", planCode: "pro" });
    const first = await live.nextEvent();
    await service.client.setQuotaOverride({ userId: "w-eve", metric: "jobs", limit: 7n, reason: "cap" });
    await service.client.clearOverride({ userId: "w-eve", target: { case: "metric", value: "jobs" } });
    const second = await live.nextEvent();
    const third = await live.nextEvent();

    const resumed = watch(["w-eve"], first.position);
    expect(await resumed.nextEvent()).toMatchObject({ id: second.id, type: "entitlements.override_set", revision: 2n });
    expect(await resumed.nextEvent()).toMatchObject({ id: third.id, type: "entitlements.override_cleared", revision: 3n });
    await service.client.upgradePlan({ userId: "w-eve", planCode: "free" });
    expect(await resumed.nextEvent()).toMatchObject({ type: "entitlements.plan_changed", revision: 4n });
  });

  it("from a snapshot's position sends only what comes after", async () => {
    const earlier = watch(["w-fay"]);
    await earlier.next();
    await service.client.upgradePlan({ userId: "w-fay", planCode: "pro" });
    // Once the feed has passed the upgrade, a snapshot's position is past it too.
    await earlier.nextEvent();
    const reader = watch(["w-fay"]);
    const snapshot = await reader.next();
    const position = snapshot.kind.case === "snapshot" ? snapshot.kind.value.position : -1n;
    const resumed = watch(["w-fay"], position);
    expect(await resumed.quietFor(300)).toBe(true);
  });

  it("with snapshot_user_ids, also snapshots users added to the watch, and does not send again what a snapshot holds", async () => {
    const first = watch(["w-gil"]);
    await first.next();
    await service.client.upgradePlan({ userId: "w-gil", planCode: "pro" });
    const seen = await first.nextEvent();
    await service.client.upgradePlan({ userId: "w-hal", planCode: "pro" });
    await service.client.setFeatureOverride({ userId: "w-gil", feature: "sso", enabled: true, reason: "pilot" });
    const reader = WatchReader.of(service.client, { userIds: ["w-gil", "w-hal"], fromPosition: seen.position, snapshotUserIds: ["w-hal"] });
    readers.push(reader);
    const snapshot = await reader.next();
    expect(snapshot.kind.case === "snapshot" && [snapshot.kind.value.userId, snapshot.kind.value.revision, snapshot.kind.value.entitlements?.plan?.code]).toEqual(["w-hal", 1n, "pro"]);
    expect(await reader.nextEvent()).toMatchObject({ userId: "w-gil", type: "entitlements.override_set", revision: 2n });
    expect(await reader.quietFor(300)).toBe(true);
  });
});
