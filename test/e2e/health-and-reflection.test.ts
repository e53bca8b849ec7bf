import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { beforeAll, describe, expect, it } from "vitest";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
} from "../../gen/grpc/health/v1/health_pb.js";
import { SERVED_SERVICES } from "../../src/services/registrations.ts";
import { GrpcTestClient } from "../support/grpc-client.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

const buf = path.resolve(import.meta.dirname, "../../node_modules/.bin/buf");
const run = promisify(execFile);
let server: TestServer;
let health: GrpcTestClient;

beforeAll(async () => {
  server = await startTestServer();
  health = new GrpcTestClient(Health, `127.0.0.1:${server.listener.grpcPort}`);
});

function watch(service: string): { statuses: ServingStatus[]; ended: Promise<void>; cancel(): void } {
  const client = new grpc.Client(`127.0.0.1:${server.listener.grpcPort}`, grpc.credentials.createInsecure());
  const statuses: ServingStatus[] = [];
  const call = client.makeServerStreamRequest(
    "/grpc.health.v1.Health/Watch",
    (request: Uint8Array) => Buffer.from(request),
    (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes),
    toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service })),
  );
  call.on("data", (response: { status: ServingStatus }) => statuses.push(response.status));
  const ended = new Promise<void>((resolve) => {
    call.on("end", resolve);
    call.on("error", () => resolve());
  });
  return { statuses, ended, cancel: () => { call.cancel(); client.close(); } };
}

describe("gRPC health", () => {
  it("answers for the server and for each service, without credentials", async () => {
    for (const service of ["", ...SERVED_SERVICES.map((s) => s.typeName)]) {
      const response = await health.call(Health.method.check, { service });
      expect(response.status, service).toBe(ServingStatus.SERVING);
    }
  });

  it("answers NOT_FOUND for a service it does not serve", async () => {
    await expect(health.call(Health.method.check, { service: "nope.v1.Nothing" })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("lists every service", async () => {
    const { statuses } = await health.call(Health.method.list, {});
    expect(Object.keys(statuses).sort()).toEqual(["", ...SERVED_SERVICES.map((s) => s.typeName)].sort());
  });

  it("streams SERVICE_UNKNOWN for an unknown service on Watch", async () => {
    const watcher = watch("nope.v1.Nothing");
    await expect.poll(() => watcher.statuses).toEqual([ServingStatus.SERVICE_UNKNOWN]);
    watcher.cancel();
  });
});

describe("server reflection", () => {
  it("lets buf curl list every method with no proto files", async () => {
    const { stdout } = await run(buf, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", `http://127.0.0.1:${server.listener.grpcPort}`]);
    const listed = stdout.trim().split("\n").sort();
    const expected = SERVED_SERVICES.flatMap((service) => service.methods.map((method) => `${service.typeName}/${method.name}`)).sort();
    expect(listed).toEqual(expected);
  });

  it.each(["grpc-v1", "grpc-v1alpha"])("lets buf curl call an RPC by its schema from reflection (%s)", async (protocol) => {
    const { stdout } = await run(buf, [
      "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol", protocol,
      "-H", `authorization: Bearer ${SERVICE_TOKEN}`,
      "-d", JSON.stringify({ userId: "reflected" }),
      `http://127.0.0.1:${server.listener.grpcPort}/${EntitlementService.typeName}/GetPlan`,
    ]);
    expect((JSON.parse(stdout) as { plan: { code: string } }).plan.code).toBe("free");
  });
});

describe("HTTP health endpoints and shutdown", () => {
  it("report live and ready, then NOT_SERVING everywhere once shutdown begins", async () => {
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${server.httpUrl}/readyz`)).json()).toEqual({ status: "SERVING" });
    const watcher = watch("");
    await expect.poll(() => watcher.statuses).toEqual([ServingStatus.SERVING]);

    server.health.shutdown();
    await watcher.ended;
    expect(watcher.statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect((await health.call(Health.method.check, { service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    const ready = await fetch(`${server.httpUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    watcher.cancel();
  });
});
