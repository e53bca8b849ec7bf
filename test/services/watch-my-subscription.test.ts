import { Code } from "@connectrpc/connect";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { WatchMySubscriptionResponse } from "../../gen/entitlements/v1/subscription_service_pb.js";
import { MAX_OWN_WATCHES } from "../../src/app/entitlement-watches.ts";
import { userToken } from "../support/service.ts";
import { createWatchingService, subscriptionClient, watchError, WatchReader, type WatchingService } from "../support/watching-service.ts";

let service: WatchingService;
beforeAll(async () => {
  service = await createWatchingService({ watchHeartbeatMs: 200 });
});

const readers: WatchReader<WatchMySubscriptionResponse>[] = [];
function watchAs(token: string | undefined, fromPosition?: bigint): WatchReader<WatchMySubscriptionResponse> {
  const client = subscriptionClient(service.composed.served, token);
  const reader = new WatchReader((signal) => client.watchMySubscription(fromPosition === undefined ? {} : { fromPosition }, { signal }));
  readers.push(reader);
  return reader;
}
afterEach(() => readers.splice(0).forEach((reader) => reader.close()));


describe("WatchMySubscription", () => {
  it("sends the caller's entitlements, then each change to them and nobody else's, resumable from a position", async () => {
    const reader = watchAs(await userToken("me-ann"));
    const first = await reader.next();
    expect(first.kind.case).toBe("snapshot");
    const snapshot = first.kind.case === "snapshot" ? first.kind.value : undefined;
    expect([snapshot?.userId, snapshot?.revision, snapshot?.entitlements?.plan?.code]).toEqual(["me-ann", 0n, "free"]);
    await service.client.upgradePlan({ userId: "me-bob", planCode: "pro" });
    await service.client.upgradePlan({ userId: "me-ann", planCode: "pro" });
    const event = await reader.nextEvent();
    expect(event).toMatchObject({ type: "entitlements.plan_changed", userId: "me-ann", revision: 1n });
    expect(event.entitlements?.plan?.code).toBe("pro");
    await service.client.upgradePlan({ userId: "me-ann", planCode: "enterprise" });
    const resumed = watchAs(await userToken("me-ann"), event.position);
    expect(await resumed.nextEvent()).toMatchObject({ userId: "me-ann", revision: 2n });
  });

  it("ends with unauthenticated once the token expires, or once the caller's sessions are revoked", async () => {
    const expiring = watchAs(await userToken("me-cat", { expiresIn: "2s" }));
    expect((await expiring.next()).kind.case).toBe("snapshot");
    const expired = await watchError(expiring);
    expect([expired.code, expired.rawMessage]).toEqual([Code.Unauthenticated, expect.stringContaining("expired")]);

    await service.client.upgradePlan({ userId: "me-dan", planCode: "pro" });
    // Issued before the revocation by the service's clock.
    const revoked = watchAs(await userToken("me-dan", { claims: { iat: Math.floor(service.clock.now().getTime() / 1000) - 5 } }));
    expect((await revoked.next()).kind.case).toBe("snapshot");
    expect((await revoked.next(2000)).kind.case).toBe("heartbeat");
    await service.composed.administration.revokeSessions("root", "me-dan");
    const ended = await watchError(revoked);
    expect([ended.code, ended.rawMessage]).toEqual([Code.Unauthenticated, expect.stringContaining("revoked")]);
  });

  it("needs a user token, and takes at most a few streams of one user", async () => {
    expect((await watchError(watchAs(undefined))).code).toBe(Code.Unauthenticated);
    expect((await watchError(watchAs(await userToken("me-eve", { secret: "not-the-secret-0123456789-0123456789" })))).code).toBe(Code.Unauthenticated);
    const token = await userToken("me-fay");
    const open = Array.from({ length: MAX_OWN_WATCHES }, () => watchAs(token));
    for (const reader of open) expect((await reader.next()).kind.case).toBe("snapshot");
    const refused = await watchError(watchAs(token));
    expect(refused.code).toBe(Code.ResourceExhausted);
    // Another user is not held back by her streams, and a closed one frees its place.
    expect((await watchAs(await userToken("me-gus")).next()).kind.case).toBe("snapshot");
    open[0]!.close();
    await expect.poll(async () => (await watchAs(token).next().catch(() => undefined))?.kind.case, { timeout: 2000 }).toBe("snapshot");
  });
});
