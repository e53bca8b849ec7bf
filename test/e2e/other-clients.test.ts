import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));

/** The shell lines of each `<!-- recipe: name -->` block of docs/api.md, as a reader copies them. */
async function recipes(): Promise<Map<string, string[]>> {
  const page = await readFile(path.join(root, "docs", "api.md"), "utf8");
  const found = new Map<string, string[]>();
  for (const match of page.matchAll(/<!-- recipe: (\w+) -->\n```sh\n([\s\S]*?)```/g)) {
    found.set(match[1]!, match[2]!.trim().split("\n"));
  }
  return found;
}

/** The Debian packages an `apt-get install -y ...` line names that are not installed. */
async function missingPackages(line: string): Promise<string[]> {
  const packages = line.replace(/^apt-get install -y /, "").split(/\s+/);
  const installed = await Promise.all(packages.map((name) => run("dpkg", ["-s", name]).then(() => true, () => false)));
  return packages.filter((_, index) => !installed[index]);
}

/**
 * The Python and Go recipes of docs/api.md, run as written (from the repository's root, into
 * its ignored clients/*\/gen folders) against the service: generate, then call it and decode a
 * refusal's details. CI installs their Debian packages (.ci/run); elsewhere a recipe whose
 * packages are missing is skipped, and says so.
 */
let server: TestServer;
let recipeLines: Map<string, string[]>;
beforeAll(async () => {
  server = await startTestServer();
  recipeLines = await recipes();
});

describe("the client recipes of docs/api.md", () => {
  it("are both there", () => {
    expect([...recipeLines.keys()].sort()).toEqual(["go", "python"]);
  });

  it.each(["python", "go"])("%s: generates a client that calls the service and decodes google.rpc.Status", async (name) => {
    const lines = recipeLines.get(name)!;
    const [install, ...steps] = lines;
    expect(install).toMatch(/^apt-get install -y /);
    const missing = await missingPackages(install!);
    if (missing.length > 0) {
      if (process.env.CI !== undefined) throw new Error(`CI must install ${missing.join(" ")} (.ci/run)`);
      process.stdout.write(`${name} recipe skipped: apt-get install -y ${missing.join(" ")}\n`);
      return;
    }
    const env = { ...process.env, GRPC_TARGET: `127.0.0.1:${server.listener.grpcPort}`, TOKEN: SERVICE_TOKEN };
    let output = "";
    for (const step of steps) {
      const { stdout } = await run("sh", ["-c", step], { cwd: root, env, maxBuffer: 16 * 1024 * 1024 });
      output += stdout;
    }
    expect(output).toContain(`ok: ${name}`);
  }, 300_000);
});
