/**
 * The transport's limit, for the benchmark: a bare @grpc/grpc-js server and a bare Node HTTP
 * server that answer a constant built from the same generated types, with no auth, no database
 * and no logging. Run as its own process: node bench/bare-servers.ts <grpcPort> <httpPort>
 */
import http from "node:http";
import * as grpc from "@grpc/grpc-js";
import { fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { EntitlementService } from "../gen/entitlements/v1/entitlement_service_pb.js";
import { constantAnswer, constantMe } from "./constant-answers.ts";

const [grpcPort = "0", httpPort = "0"] = process.argv.slice(2);

const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
const implementation: grpc.UntypedServiceImplementation = {};
for (const method of EntitlementService.methods) {
  const constant = constantAnswer(method);
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
  const httpServer = http.createServer((_, response) => {
    response.writeHead(200, { "content-type": "application/json", "cache-control": "private, no-store" });
    response.end(constantMe);
  });
  httpServer.listen(Number(httpPort), "127.0.0.1", () => {
    const address = httpServer.address() as { port: number };
    process.stdout.write(`ready ${port} ${address.port}\n`);
  });
});
