import * as grpc from "@grpc/grpc-js";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { createGrpcServer } from "../../src/transport/grpc/grpc-server.ts";
import { methodCalls } from "../../src/transport/method-calls.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { Metrics } from "../../src/platform/metrics.ts";

/**
 * The service's grpc-js server for EntitlementService with `implementation` (the methods a test
 * needs) and no interceptors, listening on a free port of 127.0.0.1.
 */
export async function bindGrpcServer(implementation: object): Promise<{ server: grpc.Server; port: number }> {
  const logger = createLogger("silent");
  const server = createGrpcServer({
    methods: methodCalls([{ service: EntitlementService, implementation }], { interceptors: [], logger, metrics: new Metrics() }),
    maxMessageBytes: 1024 * 1024,
    logger,
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { server, port };
}
