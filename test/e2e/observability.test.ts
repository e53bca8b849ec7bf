import { Writable } from "node:stream";
import { beforeAll, describe, expect, it } from "vitest";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { QuotaFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import { createLogger } from "../../src/platform/logger.ts";
import { GrpcTestClient } from "../support/grpc-client.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN, userToken } from "../support/service.ts";

/** One JSON log line per request, request ids end to end, and Prometheus metrics over HTTP. */
const lines: Record<string, unknown>[] = [];
const raw: string[] = [];
let server: TestServer;

beforeAll(async () => {
  const capture = new Writable({
    write(chunk: Buffer, _, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  server = await startTestServer({ logger: createLogger("info", capture) });
});

const rpcLines = (requestId: string) => lines.filter((line) => line.msg === "rpc" && line.request_id === requestId);

async function connectCall(method: string, body: unknown, headers: Record<string, string>) {
  return fetch(`${server.httpUrl}/entitlements.v1.EntitlementService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

describe("the request log", () => {
  it("writes one line per call with method, code, duration, request id and user, never the token", async () => {
    const response = await connectCall("GetPlan", { userId: "alice" }, { authorization: `Bearer ${SERVICE_TOKEN}`, "x-request-id": "req-123" });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).toBe("req-123");
    await expect.poll(() => rpcLines("req-123")).toHaveLength(1);
    expect(rpcLines("req-123")[0]).toMatchObject({
      rpc: "entitlements.v1.EntitlementService/GetPlan",
      code: "ok",
      user_id: "alice",
      duration_ms: expect.any(Number),
    });
    expect(raw.join("\n")).not.toContain(SERVICE_TOKEN);
  });

  it("logs refusals at the gate too, with a generated request id when none or a bad one is given", async () => {
    const response = await connectCall("GetPlan", { userId: "bob" }, { "x-request-id": "bad id with spaces" });
    expect(response.status).toBe(401);
    const requestId = response.headers.get("x-request-id");
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    await expect.poll(() => rpcLines(requestId!)).toHaveLength(1);
    expect(rpcLines(requestId!)[0]).toMatchObject({ code: "unauthenticated" });
  });

  it("takes the user from the JWT on /v1, and returns the request id", async () => {
    const token = await userToken("carol");
    const response = await fetch(`${server.httpUrl}/v1/subscription/me`, { headers: { authorization: `Bearer ${token}`, "x-request-id": "v1-req" } });
    expect(response.headers.get("x-request-id")).toBe("v1-req");
    await expect.poll(() => rpcLines("v1-req")).toHaveLength(1);
    expect(rpcLines("v1-req")[0]).toMatchObject({ rpc: "entitlements.v1.SubscriptionService/GetMySubscription", code: "ok", user_id: "carol" });
    expect(raw.join("\n")).not.toContain(token);
  });

  it("reads gRPC codes from the trailers", async () => {
    const client = new GrpcTestClient(EntitlementService, `127.0.0.1:${server.listener.grpcPort}`);
    const auth = { authorization: `Bearer ${SERVICE_TOKEN}`, "x-request-id": "grpc-req" };
    await client.call(EntitlementService.method.incrementUsage, { userId: "dave", metric: "jobs", amount: 10n }, auth);
    await expect(
      client.call(EntitlementService.method.incrementUsage, { userId: "dave", metric: "jobs", amount: 1n }, { ...auth, "x-request-id": "grpc-denied" }),
    ).rejects.toMatchObject({ code: GrpcStatus.RESOURCE_EXHAUSTED });
    client.close();
    await expect.poll(() => rpcLines("grpc-denied")).toHaveLength(1);
    expect(rpcLines("grpc-denied")[0]).toMatchObject({ code: "resource_exhausted", user_id: "dave" });
  });

  it.each([
    ["short", "web-user"],
    // Trailers over 1 KiB are compressed for a client that accepts gzip.
    ["long", "\u{1F600}".repeat(128)],
  ])("reads gRPC-Web codes from the trailers at the end of the body, which reach the caller whole (%s user id)", async (label, userId) => {
    const client = createClient(EntitlementService, createGrpcWebTransport({ baseUrl: server.httpUrl, httpVersion: "1.1" }));
    const auth = { authorization: `Bearer ${SERVICE_TOKEN}` };
    const granted = await client.incrementUsage({ userId, metric: "storage_mb", amount: 100n }, { headers: { ...auth, "x-request-id": `web-ok-${label}` } });
    expect(granted.quota?.used).toBe(100n);
    const denied = await client
      .incrementUsage({ userId, metric: "storage_mb", amount: 1n }, { headers: { ...auth, "x-request-id": `web-denied-${label}` }, timeoutMs: 5000 })
      .catch((error: unknown) => ConnectError.from(error));
    expect(denied).toMatchObject({ code: Code.ResourceExhausted });
    expect((denied as ConnectError).findDetails(QuotaFailureSchema)[0]?.violations[0]?.subject).toBe(`user:${userId}`);
    await expect.poll(() => rpcLines(`web-denied-${label}`)).toHaveLength(1);
    expect(rpcLines(`web-ok-${label}`)[0]).toMatchObject({ code: "ok" });
    expect(rpcLines(`web-denied-${label}`)[0]).toMatchObject({ code: "resource_exhausted", user_id: userId });
  });

  it("reads the code of a compressed Connect error, and the caller gets the error", async () => {
    // Connect clients accept gzip, and an error with details passes the 1 KiB compression floor.
    const client = createClient(EntitlementService, createConnectTransport({ baseUrl: server.httpUrl, httpVersion: "1.1" }));
    const userId = "u".repeat(128);
    const denied = await client
      .incrementUsage({ userId, metric: "storage_mb", amount: 1_000_000n }, { headers: { authorization: `Bearer ${SERVICE_TOKEN}`, "x-request-id": "gzip-denied" }, timeoutMs: 5000 })
      .catch((error: unknown) => ConnectError.from(error));
    expect(denied).toMatchObject({ code: Code.ResourceExhausted });
    expect((denied as ConnectError).findDetails(QuotaFailureSchema)[0]?.violations[0]?.subject).toBe(`user:${userId}`);
    await expect.poll(() => rpcLines("gzip-denied")).toHaveLength(1);
    expect(rpcLines("gzip-denied")[0]).toMatchObject({ code: "resource_exhausted" });
  });
});

describe("/metrics", () => {
  it("exposes RPC counts and latency by method and code, pool, queries, quota denials and the process", async () => {
    await connectCall("CheckQuota", { userId: "dave", metric: "jobs", amount: "5" }, { authorization: `Bearer ${SERVICE_TOKEN}` });
    const response = await fetch(`${server.httpUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text).toMatch(/rpc_server_requests_total\{service="entitlements.v1.EntitlementService",method="GetPlan",code="ok"\} [1-9]/);
    expect(text).toMatch(/rpc_server_requests_total\{service="entitlements.v1.EntitlementService",method="GetPlan",code="unauthenticated"\} [1-9]/);
    expect(text).toMatch(/rpc_server_duration_seconds_bucket\{le="0.005",service="entitlements.v1.EntitlementService",method="IncrementUsage",code="resource_exhausted"\}/);
    expect(text).toMatch(/quota_denials_total\{metric="jobs",rpc="IncrementUsage"\} 1/);
    expect(text).toMatch(/quota_denials_total\{metric="jobs",rpc="CheckQuota"\} 1/);
    expect(text).toMatch(/db_query_duration_seconds_count\{outcome="ok"\} [1-9]/);
    expect(text).toMatch(/db_pool_connections\{state="in_use"\} \d+/);
    expect(text).toMatch(/db_pool_connections\{state="waiting"\} \d+/);
    expect(text).toMatch(/process_cpu_user_seconds_total \d/);
    expect(text).toMatch(/nodejs_eventloop_lag_seconds \d/);
  });
});
