import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { EntitlementService } from "../../../gen/entitlements/v1/entitlement_service_pb.js";
import { GrpcTestClient } from "../../support/grpc-client.ts";
import { bindGrpcServer } from "../../support/grpc-server.ts";

/** The grpc-js server answers every call, even one whose response cannot be encoded. */
let server: grpc.Server;
let client: GrpcTestClient;

beforeAll(async () => {
  const implementation = {
    // An int64 out of range: protobuf-es refuses to encode it.
    getPlan: () => ({ plan: { code: "broken", quotas: [{ metric: "jobs", limit: 2n ** 70n }] } }),
    hasFeature: () => ({ enabled: true, planCode: "free" }),
  };
  const bound = await bindGrpcServer(implementation);
  server = bound.server;
  client = new GrpcTestClient(EntitlementService, `127.0.0.1:${bound.port}`);
});

afterAll(() => {
  client.close();
  server.forceShutdown();
});

describe("createGrpcServer", () => {
  it("answers internal, without its details, when a response cannot be encoded, and keeps serving", async () => {
    const failed = await client.call(EntitlementService.method.getPlan, { userId: "u" }).catch((error: unknown) => error as grpc.ServiceError);
    expect(failed).toMatchObject({ code: grpc.status.INTERNAL, details: "internal error" });
    await expect(client.call(EntitlementService.method.hasFeature, { userId: "u", feature: "api_access" })).resolves.toMatchObject({ enabled: true });
  });
});
