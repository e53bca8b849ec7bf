import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import type { EntitlementEvent } from "../../gen/entitlements/v1/events_pb.js";
import type { WatchEntitlementsResponse } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { createEntitlementClient, type EntitlementClient } from "../../clients/node/src/index.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { spawnService, type ServiceProcess } from "../support/process.ts";
import { JWT_SECRET, SERVICE_TOKEN, userToken } from "../support/service.ts";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { SubscriptionService } from "../../gen/entitlements/v1/subscription_service_pb.js";

/** Two service processes on one database: changes made through one reach watches on the other. */
let database: TestDatabase;
let env: Record<string, string>;

beforeAll(async () => {
  database = await createTestDatabase();
  env = { ...database.env, SERVICE_TOKENS: SERVICE_TOKEN, JWT_SECRET, SHUTDOWN_TIMEOUT_MS: "30000" };
}, 60_000);

const clientOf = (replica: ServiceProcess, protocol: "grpc" | "connect"): EntitlementClient =>
  createEntitlementClient({ baseUrl: `http://127.0.0.1:${protocol === "grpc" ? replica.grpcPort : replica.httpPort}`, token: SERVICE_TOKEN, protocol, timeoutMs: 10_000 });

/** A watch whose messages are collected as they come, and its end. */
function watch(client: EntitlementClient, request: { userIds: string[]; fromPosition?: bigint }) {
  const messages: WatchEntitlementsResponse[] = [];
  const abort = new AbortController();
  // No deadline: a watch lasts until it is cancelled.
  const ended = (async () => {
    for await (const message of client.watchEntitlements(request, { timeoutMs: 0, signal: abort.signal })) messages.push(message);
  })().then(
    () => undefined,
    (error: unknown) => ConnectError.from(error),
  );
  const events = () => messages.flatMap((message) => (message.kind.case === "event" ? [message.kind.value] : []));
  const eventsAfter = async (count: number): Promise<EntitlementEvent[]> => {
    const until = Date.now() + 10_000;
    while (events().length < count && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    return events();
  };
  return { messages, events, eventsAfter, ended, cancel: () => abort.abort() };
}

describe("the change feed across replicas", () => {
  it("brings a change made through one replica to a watch on another, over gRPC and Connect", async () => {
    const [a, b] = await Promise.all([spawnService(env), spawnService(env)]);
    const onGrpc = watch(clientOf(b, "grpc"), { userIds: ["x-ann"] });
    const onConnect = watch(clientOf(b, "connect"), { userIds: ["x-ann"] });
    while (onGrpc.messages.length === 0 || onConnect.messages.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    await clientOf(a, "connect").upgradePlan({ userId: "x-ann", planCode: "pro" });
    for (const stream of [onGrpc, onConnect]) {
      const [event] = await stream.eventsAfter(1);
      expect(event).toMatchObject({ type: "entitlements.plan_changed", userId: "x-ann", revision: 1n });
      expect(event?.entitlements?.plan?.code).toBe("pro");
      stream.cancel();
    }
    await Promise.all([a.stop(), b.stop()]);
  }, 60_000);

  it("ends watches at once on SIGTERM with UNAVAILABLE, and a watch resumed after a restart misses nothing", async () => {
    const a = await spawnService(env);
    let b = await spawnService(env);
    const users = ["x-bob", "x-cid"];
    const first = watch(clientOf(b, "grpc"), { userIds: users });
    while (first.messages.length < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    const writer = clientOf(a, "grpc");
    await writer.upgradePlan({ userId: "x-bob", planCode: "pro" });
    const [seen] = await first.eventsAfter(1);
    expect(seen?.userId).toBe("x-bob");

    const stopping = Date.now();
    const stopped = b.stop("SIGTERM");
    const error = await first.ended;
    // Ended well before the 30 s drain the replica allows its unary calls.
    expect(Date.now() - stopping).toBeLessThan(5000);
    expect(error?.code).toBe(Code.Unavailable);
    await stopped;

    // Changes while the watcher's replica is gone.
    await writer.setFeatureOverride({ userId: "x-cid", feature: "sso", enabled: true, reason: "pilot" });
    await writer.upgradePlan({ userId: "x-bob", planCode: "enterprise" });
    await writer.upgradePlan({ userId: "x-someone", planCode: "pro" });

    b = await spawnService(env);
    const resumed = watch(clientOf(b, "grpc"), { userIds: users, fromPosition: seen!.position });
    const missed = await resumed.eventsAfter(2);
    expect(missed.map((event) => [event.userId, event.type, event.revision])).toEqual([
      ["x-cid", "entitlements.override_set", 1n],
      ["x-bob", "entitlements.plan_changed", 2n],
    ]);
    expect(resumed.messages.some((message) => message.kind.case === "snapshot")).toBe(false);
    await writer.upgradePlan({ userId: "x-cid", planCode: "pro" });
    expect((await resumed.eventsAfter(3))[2]).toMatchObject({ userId: "x-cid", revision: 2n });
    resumed.cancel();
    await Promise.all([a.stop(), b.stop()]);
  }, 90_000);

  it("brings a plan change to the user's own WatchMySubscription over Connect (as browsers call), gRPC-Web and gRPC", async () => {
    const replica = await spawnService(env);
    const token = await userToken("x-own");
    const asUser: Interceptor = (next) => (request) => {
      request.header.set("authorization", `Bearer ${token}`);
      return next(request);
    };
    const options = { interceptors: [asUser] };
    const transports = [
      createConnectTransport({ baseUrl: `http://127.0.0.1:${replica.httpPort}`, httpVersion: "1.1", ...options }),
      createGrpcWebTransport({ baseUrl: `http://127.0.0.1:${replica.httpPort}`, httpVersion: "1.1", ...options }),
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${replica.grpcPort}`, ...options }),
    ];
    const abort = new AbortController();
    const streams = transports.map((transport) => createClient(SubscriptionService, transport).watchMySubscription({}, { timeoutMs: 0, signal: abort.signal })[Symbol.asyncIterator]());
    for (const stream of streams) expect((await stream.next()).value?.kind).toMatchObject({ case: "snapshot", value: { userId: "x-own" } });
    await clientOf(replica, "grpc").upgradePlan({ userId: "x-own", planCode: "pro" });
    for (const stream of streams) {
      let message = await stream.next();
      while (message.value?.kind.case === "heartbeat") message = await stream.next();
      expect(message.value?.kind).toMatchObject({ case: "event", value: { type: "entitlements.plan_changed", userId: "x-own", revision: 1n } });
    }
    abort.abort();
    await replica.stop();
  }, 60_000);
});
