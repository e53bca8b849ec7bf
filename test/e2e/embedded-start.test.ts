import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { GrpcTestClient } from "../support/grpc-client.ts";
import { spawnService, type ServiceProcess } from "../support/process.ts";

/** `npm start` on a machine with no PostgreSQL: the CLI boots its embedded database. */
let dataDir: string;
let service: ServiceProcess;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "entitlements-start-"));
  service = await spawnService({ DATA_DIR: dataDir, DATABASE_URL: undefined, SERVICE_TOKENS: undefined });
}, 120_000);

afterAll(() => rm(dataDir, { recursive: true, force: true }));

async function devServiceToken(): Promise<string> {
  return (JSON.parse(await readFile(path.join(dataDir, "dev-secrets.json"), "utf8")) as { serviceToken: string }).serviceToken;
}

describe("the embedded default", () => {
  it("prints ready-to-paste examples with a service token, and where the embedded PostgreSQL listens", async () => {
    expect(service.output()).toContain(`Service token:                        ${await devServiceToken()}`);
    expect(service.output()).toContain("buf curl");
    expect(service.output()).toContain("curl -s");
    expect(service.output()).toContain("npm run -s cli -- token alice");
    const psql = /psql '(postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/postgres)'/.exec(service.output());
    expect(psql, service.output()).not.toBeNull();
    const database = new pg.Client({ connectionString: psql![1]! });
    await database.connect();
    try {
      expect((await database.query("select count(*) > 0 as seeded from plans")).rows).toEqual([{ seeded: true }]);
    } finally {
      await database.end();
    }
  });

  it("answers GetPlan with the free plan through grpc-js", async () => {
    const client = new GrpcTestClient(EntitlementService, `127.0.0.1:${service.grpcPort}`);
    try {
      const response = await client.call(EntitlementService.method.getPlan, { userId: "first-user" }, { authorization: `Bearer ${await devServiceToken()}` });
      expect(response.plan?.code).toBe("free");
    } finally {
      client.close();
    }
  });

  it("lets the CLI grant superadmin rights while it runs, on the same embedded database", async () => {
    const cli = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));
    const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir };
    delete env.DATABASE_URL;
    const { stdout } = await promisify(execFile)(process.execPath, [cli, "admin", "grant", "first-user"], { env });
    expect(stdout).toBe("first-user is now a superadmin\n");
  });

  it("stops cleanly on SIGTERM", async () => {
    expect(await service.stop("SIGTERM")).toBe(0);
  });
});
