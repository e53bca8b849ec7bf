/**
 * The transport's limit, for the benchmark: a bare @grpc/grpc-js server and a bare Node HTTP
 * server that answer a constant built from the same generated types, with no auth, no database
 * and no logging. Run as its own process: node bench/bare-servers.ts <grpcPort> <httpPort>
 */
import http from "node:http";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, toJsonString, type DescMessage } from "@bufbuild/protobuf";
import { EntitlementService } from "../gen/entitlements/v1/entitlement_service_pb.js";
import { GetMySubscriptionResponseSchema } from "../gen/entitlements/v1/subscription_service_pb.js";
import { DEFAULT_PLANS } from "../src/db/seed.ts";
import { planMessage, quotaStatusMessage } from "../src/services/messages.ts";
import { quotaState } from "../src/domain/quota.ts";

const [grpcPort = "0", httpPort = "0"] = process.argv.slice(2);
const plan = planMessage(DEFAULT_PLANS[0]!);
const quota = quotaStatusMessage(quotaState({ code: "jobs", resetPeriod: "month", description: "" }, 10n, 3n, new Date()));
const responses: Record<string, unknown> = {
  getPlan: { plan },
  hasFeature: { enabled: true, planCode: "free" },
  checkQuota: { allowed: true, quota },
  incrementUsage: { quota, replayed: false },
  upgradePlan: { plan },
  listPlans: { plans: [plan] },
  getUsage: { quotas: [quota] },
};

const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
const implementation: grpc.UntypedServiceImplementation = {};
for (const method of EntitlementService.methods) {
  const output = method.output as DescMessage;
  const constant = Buffer.from(toBinary(output, create(output, responses[method.localName] as never)));
  definition[method.localName] = {
    path: `/${EntitlementService.typeName}/${method.name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: Buffer) => value,
    // Parsed, as a real server must, then dropped.
    requestDeserialize: (bytes: Buffer) => (fromBinary(method.input as DescMessage, bytes), bytes),
    responseSerialize: (value: Buffer) => value,
    responseDeserialize: (bytes: Buffer) => bytes,
  };
  implementation[method.localName] = (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, constant);
}

const server = new grpc.Server();
server.addService(definition, implementation);
server.bindAsync(`127.0.0.1:${grpcPort}`, grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  const me = toJsonString(GetMySubscriptionResponseSchema, create(GetMySubscriptionResponseSchema, { plan }), { alwaysEmitImplicit: true });
  const httpServer = http.createServer((_, response) => {
    response.writeHead(200, { "content-type": "application/json", "cache-control": "private, no-store" });
    response.end(me);
  });
  httpServer.listen(Number(httpPort), "127.0.0.1", () => {
    const address = httpServer.address() as { port: number };
    process.stdout.write(`ready ${port} ${address.port}\n`);
  });
});
