import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { freePort } from "../../src/db/embedded.ts";
import { GrpcTestClient } from "../support/grpc-client.ts";

/** `npm start` on a machine with no PostgreSQL: the CLI boots its embedded database. */
const cli = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));
let dataDir: string;
let server: ChildProcess;
let grpcPort: number;
let output = "";

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "entitlements-start-"));
  grpcPort = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, GRPC_PORT: String(grpcPort), HTTP_PORT: String(await freePort()), LOG_LEVEL: "warn" };
  delete env.DATABASE_URL;
  delete env.SERVICE_TOKENS;
  server = spawn(process.execPath, [cli, "serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Entitlement service ready")) resolve();
    };
    server.stdout!.on("data", onData);
    server.stderr!.on("data", onData);
    server.once("exit", (code) => reject(new Error(`the server exited with ${code}:\n${output}`)));
  });
}, 120_000);

afterAll(async () => {
  if (server.exitCode === null) {
    server.kill("SIGKILL");
    await once(server, "exit");
  }
  await rm(dataDir, { recursive: true, force: true });
});

describe("the embedded default", () => {
  it("prints ready-to-paste examples with a service token", async () => {
    const { serviceToken } = JSON.parse(await readFile(path.join(dataDir, "dev-secrets.json"), "utf8")) as { serviceToken: string };
    expect(output).toContain(`Service token:                        ${serviceToken}`);
    expect(output).toContain("buf curl");
    expect(output).toContain("curl -s");
  });

  it("answers GetPlan with the free plan through grpc-js", async () => {
    const { serviceToken } = JSON.parse(await readFile(path.join(dataDir, "dev-secrets.json"), "utf8")) as { serviceToken: string };
    const client = new GrpcTestClient(EntitlementService, `127.0.0.1:${grpcPort}`);
    try {
      const response = await client.call(EntitlementService.method.getPlan, { userId: "first-user" }, { authorization: `Bearer ${serviceToken}` });
      expect(response.plan?.code).toBe("free");
    } finally {
      client.close();
    }
  });

  it("stops cleanly on SIGTERM", async () => {
    server.kill("SIGTERM");
    const [code] = await once(server, "exit");
    expect(code).toBe(0);
  });
});
