import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import type { Listener } from "../../src/transport/listeners.ts";
import { GrpcTestClient } from "../support/grpc-client.ts";
import { startTestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/** TLS and mutual TLS on both ports, with certificates made here by openssl. */
const run = promisify(execFile);
const openssl = (args: string[]) => run("openssl", args);
let directory: string;
let pem: Record<"ca" | "serverCert" | "serverKey" | "clientCert" | "clientKey" | "strangerCert" | "strangerKey", Buffer>;
let tlsServer: Listener;
let mtlsServer: Listener;
const auth = { authorization: `Bearer ${SERVICE_TOKEN}` };

async function makeCertificates(): Promise<void> {
  directory = await mkdtemp(path.join(tmpdir(), "entitlements-tls-"));
  const file = (name: string) => path.join(directory, name);
  await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=test-ca", "-keyout", file("ca.key"), "-out", file("ca.pem")]);
  const signed = async (name: string, cn: string, extensions: string) => {
    await openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${cn}`, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`)]);
    await writeFile(file(`${name}.ext`), extensions);
    await openssl(["x509", "-req", "-in", file(`${name}.csr`), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", file(`${name}.ext`), "-out", file(`${name}.pem`)]);
  };
  await signed("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  await signed("client", "backend-service", "extendedKeyUsage=clientAuth\n");
  await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=stranger", "-keyout", file("stranger.key"), "-out", file("stranger.pem")]);
  pem = {
    ca: await readFile(file("ca.pem")),
    serverCert: await readFile(file("server.pem")),
    serverKey: await readFile(file("server.key")),
    clientCert: await readFile(file("client.pem")),
    clientKey: await readFile(file("client.key")),
    strangerCert: await readFile(file("stranger.pem")),
    strangerKey: await readFile(file("stranger.key")),
  };
}

beforeAll(async () => {
  await makeCertificates();
  ({ listener: tlsServer } = await startTestServer({ tls: { cert: pem.serverCert, key: pem.serverKey, clientCa: undefined } }));
  ({ listener: mtlsServer } = await startTestServer({ tls: { cert: pem.serverCert, key: pem.serverKey, clientCa: pem.ca } }));
}, 60_000);

afterAll(() => rm(directory, { recursive: true, force: true }));

function grpcClient(port: number, credentials: grpc.ChannelCredentials) {
  return new GrpcTestClient(EntitlementService, `localhost:${port}`, credentials);
}

function connectClient(port: number, tls: { cert?: Buffer; key?: Buffer }) {
  return createClient(
    EntitlementService,
    createConnectTransport({ baseUrl: `https://localhost:${port}`, httpVersion: "1.1", nodeOptions: { ca: pem.ca, ...tls } }),
  );
}

describe("TLS", () => {
  it("serves gRPC and Connect over TLS", async () => {
    const client = grpcClient(tlsServer.grpcPort, grpc.credentials.createSsl(pem.ca));
    expect((await client.call(EntitlementService.method.getPlan, { userId: "tls" }, auth)).plan?.code).toBe("free");
    client.close();
    const response = await connectClient(tlsServer.httpPort, {}).getPlan({ userId: "tls" }, { headers: auth });
    expect(response.plan?.code).toBe("free");
  });

  it("is not spoken in cleartext", async () => {
    const client = grpcClient(tlsServer.grpcPort, grpc.credentials.createInsecure());
    await expect(client.call(EntitlementService.method.getPlan, { userId: "tls" }, auth)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    client.close();
  });
});

describe("mutual TLS", () => {
  it("serves callers with a certificate the client CA signed", async () => {
    const client = grpcClient(mtlsServer.grpcPort, grpc.credentials.createSsl(pem.ca, pem.clientKey, pem.clientCert));
    expect((await client.call(EntitlementService.method.getPlan, { userId: "mtls" }, auth)).plan?.code).toBe("free");
    client.close();
    const response = await connectClient(mtlsServer.httpPort, { cert: pem.clientCert, key: pem.clientKey }).getPlan({ userId: "mtls" }, { headers: auth });
    expect(response.plan?.code).toBe("free");
  });

  it("refuses callers without a certificate, or with one the CA did not sign", async () => {
    for (const credentials of [grpc.credentials.createSsl(pem.ca), grpc.credentials.createSsl(pem.ca, pem.strangerKey, pem.strangerCert)]) {
      const client = grpcClient(mtlsServer.grpcPort, credentials);
      await expect(client.call(EntitlementService.method.getPlan, { userId: "mtls" }, auth)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      client.close();
    }
    for (const tls of [{}, { cert: pem.strangerCert, key: pem.strangerKey }]) {
      await expect(connectClient(mtlsServer.httpPort, tls).getPlan({ userId: "mtls" }, { headers: auth })).rejects.toThrow();
    }
  });
});
