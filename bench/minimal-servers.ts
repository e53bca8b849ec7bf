/**
 * How close any server can come to the limits on this machine, for the benchmark: a
 * @grpc/grpc-js server and a node:http server (for /v1) that do only the work every call of the
 * service must do, with the service's own code for it, and answer the bare servers' constants:
 * the credential checked as the service checks it (a service token over gRPC, a user's JWT on
 * /v1), a request id sent back, the call's log line and RPC metrics (reportCall). IncrementUsage
 * also runs the increment's upsert through node-postgres, the statement pgbench runs. No cache, validation, Connect context, deadline, load shedding or
 * Slonik. Run as its own process, with SERVICE_TOKENS and JWT_SECRET set:
 * node bench/minimal-servers.ts <grpcPort> <httpPort> <databaseUrl>
 * It keeps its calls young as the service does (V8's pretenuring off, the sessions' stream tables).
 */
import "../src/platform/collector.ts";
import http from "node:http";
import * as grpc from "@grpc/grpc-js";
import { fromBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";
import pg from "pg";
import { EntitlementService } from "../gen/entitlements/v1/entitlement_service_pb.js";
import { SubscriptionService } from "../gen/entitlements/v1/subscription_service_pb.js";
import { bearerCredential, serviceTokenMatcher } from "../src/auth/gates.ts";
import { createLogger } from "../src/platform/logger.ts";
import { Metrics } from "../src/platform/metrics.ts";
import { reportCall, requestIdOf } from "../src/transport/call-lifecycle.ts";
import { requestUserKey } from "../src/transport/interceptors/call-attributes.ts";
import { createUserTokenVerifier } from "../src/auth/user-tokens.ts";
import { installStreamTables } from "../src/transport/grpc/stream-tables.ts";
import { constantAnswer, constantMe } from "./constant-answers.ts";
import { incrementSql } from "./support.ts";

const [grpcPort = "0", httpPort = "0", databaseUrl] = process.argv.slice(2);
const isServiceToken = serviceTokenMatcher([{ name: undefined, token: process.env.SERVICE_TOKENS ?? "" }]);
const verifyUserToken = createUserTokenVerifier({ secret: process.env.JWT_SECRET, clockToleranceSeconds: 30 });
const logger = createLogger("info");
const metrics = new Metrics();
const pool = new pg.Pool({ connectionString: databaseUrl, max: 16 });
const increment = { name: "minimal_increment", text: incrementSql("$1") };

/** Starts a call: its request id, and a `finish` that writes its log line and metrics. */
function callOf(service: DescService, method: DescMethod) {
  const report = reportCall(logger, metrics, { service, method });
  return (givenRequestId: string | undefined, userId: string) => {
    const started = performance.now();
    const requestId = requestIdOf(givenRequestId);
    const contextValues = createContextValues().set(requestUserKey, userId);
    return { requestId, finish: (code: string) => report({ requestId, code, durationMs: performance.now() - started, contextValues }) };
  };
}

const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
const implementation: grpc.UntypedServiceImplementation = {};
for (const method of EntitlementService.methods) {
  const constant = constantAnswer(method);
  const start = callOf(EntitlementService, method);
  definition[method.localName] = {
    path: `/${EntitlementService.typeName}/${method.name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (value: Buffer) => value,
    responseDeserialize: (bytes: Buffer) => bytes,
  };
  implementation[method.localName] = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    const { userId } = fromBinary(method.input as DescMessage, call.request) as unknown as { userId: string };
    const { requestId, finish } = start(call.metadata.get("x-request-id")[0] as string | undefined, userId);
    const token = bearerCredential(call.metadata.get("authorization")[0] as string | undefined);
    if (token === undefined || !isServiceToken(token)) {
      callback({ code: grpc.status.UNAUTHENTICATED });
      finish("unauthenticated");
      return;
    }
    const answer = () => {
      const metadata = new grpc.Metadata();
      metadata.set("x-request-id", requestId);
      call.sendMetadata(metadata);
      callback(null, constant);
      finish("ok");
    };
    if (method !== EntitlementService.method.incrementUsage) answer();
    else pool.query({ ...increment, values: [userId] }).then(answer, (error: Error) => (callback(error), finish("internal")));
  };
}

const startMe = callOf(SubscriptionService, SubscriptionService.method.getMySubscription);
const httpServer = http.createServer((request, response) => {
  verifyUserToken(bearerCredential(request.headers.authorization) ?? "").then(
    ({ userId }) => {
      const { requestId, finish } = startMe(request.headers["x-request-id"] as string | undefined, userId);
      response.writeHead(200, { "content-type": "application/json", "cache-control": "private, no-store", "x-request-id": requestId });
      response.end(constantMe);
      finish("ok");
    },
    () => response.writeHead(401).end(),
  );
});

const server = new grpc.Server();
server.addService(definition, implementation);
server.bindAsync(`127.0.0.1:${grpcPort}`, grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  installStreamTables(server);
  httpServer.listen(Number(httpPort), "127.0.0.1", () => {
    const address = httpServer.address() as { port: number };
    process.stderr.write(`ready ${port} ${address.port}\n`);
  });
});
