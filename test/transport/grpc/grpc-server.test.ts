import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { EntitlementService } from "../../../gen/entitlements/v1/entitlement_service_pb.js";
import { methodCalls } from "../../../src/transport/method-calls.ts";
import { createGrpcServer } from "../../../src/transport/grpc/grpc-server.ts";
import { createLogger } from "../../../src/platform/logger.ts";
import { Metrics } from "../../../src/platform/metrics.ts";
import { GrpcTestClient } from "../../support/grpc-client.ts";

/** The grpc-js server answers every call, even one whose response cannot be encoded. */
let server: grpc.Server;
let client: GrpcTestClient;

beforeAll(async () => {
  const implementation = {
    // An int64 out of range: protobuf-es refuses to encode it.
    getPlan: () => ({ plan: { code: "broken", quotas: [{ metric: "jobs", limit: 2n ** 70n }] } }),
    hasFeature: () => ({ enabled: true, planCode: "free" }),
  };
  const logger = createLogger("silent");
  server = createGrpcServer({
    methods: methodCalls([{ service: EntitlementService, implementation }], { interceptors: [], logger, metrics: new Metrics() }),
    maxMessageBytes: 1024 * 1024,
    logger,
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  client = new GrpcTestClient(EntitlementService, `127.0.0.1:${port}`);
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
