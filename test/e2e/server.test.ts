import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { isMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { QuotaFailureSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { Listener } from "../../src/transport/listeners.ts";
import { GrpcTestClient, grpcErrorDetails } from "../support/grpc-client.ts";
import { startTestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/** The real listeners on loopback, called through real clients. */
let listener: Listener;
let grpcClient: GrpcTestClient;
const auth = { authorization: `Bearer ${SERVICE_TOKEN}` };
const methods = EntitlementService.method;

beforeAll(async () => {
  ({ listener } = await startTestServer());
  grpcClient = new GrpcTestClient(EntitlementService, `127.0.0.1:${listener.grpcPort}`);
});

afterAll(() => grpcClient.close());

function asServiceError(error: unknown): ServiceError {
  expect(error).toHaveProperty("code");
  return error as ServiceError;
}

describe("gRPC through @grpc/grpc-js", () => {
  it("answers GetPlan with the free plan", async () => {
    const response = await grpcClient.call(methods.getPlan, { userId: "grpc-user" }, auth);
    expect(response.plan?.code).toBe("free");
    expect(response.subscription).toBeUndefined();
  });

  it("refuses a call without a service token", async () => {
    const error = asServiceError(await grpcClient.call(methods.getPlan, { userId: "u" }).catch((e: unknown) => e));
    expect(error.code).toBe(GrpcStatus.UNAUTHENTICATED);
  });

  it("grants exactly the limit to many concurrent increments", async () => {
    const userId = "grpc-race";
    const settled = await Promise.allSettled(
      Array.from({ length: 60 }, () => grpcClient.call(methods.incrementUsage, { userId, metric: "jobs", amount: 1n }, auth)),
    );
    const granted = settled.filter((result) => result.status === "fulfilled");
    const refused = settled.flatMap((result) => (result.status === "rejected" ? [asServiceError(result.reason)] : []));
    expect(granted).toHaveLength(10);
    expect(refused).toHaveLength(50);
    for (const error of refused) {
      expect(error.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    }
    const details = grpcErrorDetails(refused[0]!);
    const quotaFailure = details.find((detail) => detail !== undefined && isMessage(detail, QuotaFailureSchema));
    expect(quotaFailure).toMatchObject({ violations: [{ quotaMetric: "jobs", quotaValue: 10n }] });
    const usage = await grpcClient.call(methods.checkQuota, { userId, metric: "jobs" }, auth);
    expect(usage.quota?.used).toBe(10n);
  });

  it("counts racing retries of one idempotency key once", async () => {
    const userId = "grpc-retries";
    const request = { userId, metric: "api_calls", amount: 7n, idempotencyKey: "req-1" };
    const responses = await Promise.all(Array.from({ length: 25 }, () => grpcClient.call(methods.incrementUsage, request, auth)));
    expect(responses.filter((response) => !response.replayed)).toHaveLength(1);
    expect(responses.every((response) => response.quota?.used === 7n)).toBe(true);
    const usage = await grpcClient.call(methods.checkQuota, { userId, metric: "api_calls" }, auth);
    expect(usage.quota?.used).toBe(7n);
  });
});

describe("malformed gRPC messages", () => {
  it("are invalid_argument, not internal", async () => {
    const client = new grpc.Client(`127.0.0.1:${listener.grpcPort}`, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", auth.authorization);
    const error = await new Promise<grpc.ServiceError>((resolve) => {
      client.makeUnaryRequest(
        "/entitlements.v1.EntitlementService/GetPlan",
        (bytes: Buffer) => bytes,
        (bytes: Buffer) => bytes,
        Buffer.from([0x00, 0xff, 0x07]),
        metadata,
        (e) => resolve(e!),
      );
    });
    client.close();
    expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
  });
});

describe("Connect over HTTP/1.1", () => {
  const client = () =>
    createClient(
      EntitlementService,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${listener.httpPort}`, httpVersion: "1.1" }),
    );

  it("answers with the same service", async () => {
    const headers = new Headers(auth);
    await client().upgradePlan({ userId: "connect-user", planCode: "pro" }, { headers });
    const response = await client().getPlan({ userId: "connect-user" }, { headers });
    expect(response.plan?.code).toBe("pro");
  });

  it("maps quota exhaustion to resource_exhausted with details", async () => {
    const headers = new Headers(auth);
    await client().incrementUsage({ userId: "connect-full", metric: "jobs", amount: 10n }, { headers });
    const error = ConnectError.from(
      await client().incrementUsage({ userId: "connect-full", metric: "jobs", amount: 1n }, { headers }).catch((e: unknown) => e),
    );
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.findDetails(QuotaFailureSchema)).toHaveLength(1);
  });

  it("serves plain JSON to curl-like callers", async () => {
    const response = await fetch(`http://127.0.0.1:${listener.httpPort}/entitlements.v1.EntitlementService/GetUsage`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ userId: "json-user" }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { quotas: { metric: string; used: string }[] };
    expect(body.quotas.find((quota) => quota.metric === "jobs")).toMatchObject({ used: "0", limit: "10" });
  });

  it("refuses oversize messages", async () => {
    const response = await fetch(`http://127.0.0.1:${listener.httpPort}/entitlements.v1.EntitlementService/GetPlan`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ userId: "x".repeat(2 * 1024 * 1024) }),
    });
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
  });
});

describe("gRPC-Web over HTTP/1.1", () => {
  it("answers too", async () => {
    const client = createClient(
      EntitlementService,
      createGrpcWebTransport({ baseUrl: `http://127.0.0.1:${listener.httpPort}`, httpVersion: "1.1" }),
    );
    const response = await client.hasFeature({ userId: "web", feature: "api_access" }, { headers: new Headers(auth) });
    expect(response).toMatchObject({ enabled: true, planCode: "free" });
  });
});
