import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { createEntitlementClient } from "../../clients/node/src/index.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { spawnService } from "../support/process.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/** CATALOG_FILE: applied at start; a file that does not validate stops the process with its problems. */
const cli = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));
const defaultFile = fileURLToPath(new URL("../../catalog/default.yaml", import.meta.url));
let database: TestDatabase;
let directory: string;

beforeAll(async () => {
  database = await createTestDatabase();
  directory = await mkdtemp(path.join(tmpdir(), "catalog-start-"));
});

describe("CATALOG_FILE", () => {
  it("stops the start with every problem of a file that does not validate", async () => {
    const invalid = path.join(directory, "invalid.yaml");
    await writeFile(invalid, (await readFile(defaultFile, "utf8")).replace("jobs: 500", "jbos: 500"));
    const failure = await promisify(execFile)(process.execPath, [cli, "serve"], {
      env: { ...process.env, ...database.env, LOG_LEVEL: "silent", GRPC_PORT: "0", HTTP_PORT: "0", CATALOG_FILE: invalid },
    }).catch((error: unknown) => error as { code: number; stderr: string });
    expect(failure).toMatchObject({ code: 1 });
    expect((failure as { stderr: string }).stderr).toContain('plans.pro.quotas.jbos: unknown metric "jbos"');
  });

  it("is applied at start, once however many replicas start together", async () => {
    const raised = path.join(directory, "raised.yaml");
    await writeFile(raised, (await readFile(defaultFile, "utf8")).replace("price_cents: 1999", "price_cents: 2499"));
    const env = { ...database.env, SERVICE_TOKENS: SERVICE_TOKEN, CATALOG_FILE: raised };
    const [first, second] = await Promise.all([spawnService(env), spawnService(env)]);
    try {
      const client = createEntitlementClient({ baseUrl: `http://127.0.0.1:${second.grpcPort}`, token: SERVICE_TOKEN });
      const pro = (await client.listPlans({})).plans.find((plan) => plan.code === "pro");
      expect(pro).toMatchObject({ priceCents: 2499n, version: 2 });
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  });
});
