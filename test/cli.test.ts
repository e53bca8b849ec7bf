import { execFile } from "node:child_process";
import net from "node:net";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { jwtVerify } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { sql } from "slonik";
import { z } from "zod";
import { createTestDatabase, type TestDatabase } from "./support/database.ts";

const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const run = promisify(execFile);
const JWT_SECRET = "a-test-jwt-secret-of-at-least-32-chars";

function entitlements(args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(process.execPath, [cli, ...args], { env: { ...process.env, LOG_LEVEL: "silent", ...env } });
}

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase({ empty: true });
});

describe("the CLI", () => {
  it("exits 1 naming a bad configuration value", async () => {
    const failure = await entitlements(["plans"], { GRPC_PORT: "not-a-port" }).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 1 });
    expect((failure as { stderr: string }).stderr).toContain("GRPC_PORT");
  });

  it("names the variable and the value of a bad port, and the setting of a port in use", async () => {
    const bad = await entitlements(["plans"], { HTTP_PORT: "abc" }).catch((e: unknown) => e);
    expect((bad as { stderr: string }).stderr).toContain('HTTP_PORT: must be a port number from 0 to 65535 (0: any free port) (got "abc")');
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const own = await createTestDatabase({ empty: true });
      const failure = await entitlements(["serve"], { ...own.env, HOST: "127.0.0.1", GRPC_PORT: "0", HTTP_PORT: String(port) }).catch((e: unknown) => e);
      expect(failure).toMatchObject({ code: 1 });
      expect((failure as { stderr: string }).stderr.trim()).toBe(
        `cannot listen on 127.0.0.1:${port} (HTTP_PORT): the address is in use: another process listens there. Set HTTP_PORT to a free port (0: any).`,
      );
    } finally {
      taken.close();
    }
  });

  it("exits 1 on an unknown command, with the usage", async () => {
    const failure = await entitlements(["frobnicate"]).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 1 });
    expect((failure as { stderr: string }).stderr).toContain("Usage: entitlements");
  });

  it("validates a catalog file: exit 0, or exit 1 with one problem a line", async () => {
    const valid = fileURLToPath(new URL("../catalog/default.yaml", import.meta.url));
    const { stdout } = await entitlements(["catalog", "validate", valid]);
    expect(stdout).toContain("a valid catalog (3 plans, 4 metrics, 7 features)");
    const directory = await mkdtemp(path.join(tmpdir(), "catalog-"));
    const invalid = path.join(directory, "catalog.yaml");
    await writeFile(invalid, (await readFile(valid, "utf8")).replace("jobs: 500", "jbos: 500").replace("[api_access]", "[api_acess]"));
    const failure = await entitlements(["catalog", "validate", invalid]).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 1 });
    expect((failure as { stderr: string }).stderr.trim().split("\n")).toEqual([
      'plans.free.features[0]: unknown feature "api_acess"',
      'plans.pro.quotas.jbos: unknown metric "jbos"',
    ]);
  });

  it("migrates, seeds and prints the catalog, saying what each step did", async () => {
    expect((await entitlements(["migrate"], database.env)).stdout).toMatch(/^applied \d+ migrations: 1764547200000_initial-schema, /);
    expect((await entitlements(["migrate"], database.env)).stdout).toBe("no pending migrations: the database is current\n");
    expect((await entitlements(["seed"], database.env)).stdout).toMatch(/^published (\w+ v1, )+\w+ v1\n$/);
    expect((await entitlements(["seed"], database.env)).stdout).toBe("catalog unchanged: every plan matches the default catalog\n");
    const { stdout } = await entitlements(["plans"], database.env);
    expect(stdout).toContain("free (Free): USD 0.00/month");
    expect(stdout).toContain("pro (Pro): USD 19.99/month");
    expect(stdout).toContain("enterprise (Enterprise): USD 99.99/month");
  });

  it("grants and revokes superadmin rights, audited", async () => {
    const env = database.env;
    expect((await entitlements(["admin", "grant", "first-admin"], env)).stdout).toContain("first-admin is now a superadmin");
    // Granted again: nothing changes, nothing more is audited.
    expect((await entitlements(["admin", "grant", "first-admin"], env)).stdout).toContain("first-admin is now a superadmin");
    expect((await entitlements(["admin", "revoke", "first-admin"], env)).stdout).toContain("first-admin is no longer a superadmin");
    const actions = await database.pool.anyFirst(sql.type(z.object({ action: z.string() }))`
      select action from audit_events where target_user_id = 'first-admin' and actor_id = 'cli' order by id
    `);
    expect(actions).toEqual(["superadmin.grant", "superadmin.revoke"]);
    const failure = await entitlements(["admin", "promote", "x"], env).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 1 });
  });

  it("mints a development JWT for a user", async () => {
    const { stdout } = await entitlements(["token", "alice", "--ttl", "120"], { JWT_SECRET });
    const { payload, protectedHeader } = await jwtVerify(stdout.trim(), new TextEncoder().encode(JWT_SECRET));
    expect(protectedHeader.alg).toBe("HS256");
    expect(payload.sub).toBe("alice");
    expect(payload.exp! - payload.iat!).toBe(120);
  });

  it("refuses a bad --ttl without a stack, and takes --email", async () => {
    const negative = await entitlements(["token", "alice", "--ttl", "-1"], { JWT_SECRET }).catch((e: unknown) => e);
    expect(negative).toMatchObject({ code: 1 });
    expect((negative as { stderr: string }).stderr).toMatch(/^token: Option '--ttl' argument is ambiguous/);
    expect((negative as { stderr: string }).stderr).not.toContain("    at ");
    const zero = await entitlements(["token", "alice", "--ttl=0"], { JWT_SECRET }).catch((e: unknown) => e);
    expect((zero as { stderr: string }).stderr).toContain("positive --ttl");
    const { stdout } = await entitlements(["token", "alice", "--email", "alice@example.com"], { JWT_SECRET });
    expect((await jwtVerify(stdout.trim(), new TextEncoder().encode(JWT_SECRET))).payload.email).toBe("alice@example.com");
  });

  it("mints no token the service would refuse: with DATABASE_URL and no JWT_SECRET it says why", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" };
    delete env.JWT_SECRET;
    const failure = await run(process.execPath, [cli, "token", "alice"], { env: { ...env, LOG_LEVEL: "silent" } }).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 1 });
    expect((failure as { stderr: string }).stderr).toContain("JWT_SECRET is not set");
  });
});
