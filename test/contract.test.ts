import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** CI's `buf breaking` guard works: a breaking change to a copy of the contract is caught. */
const root = path.resolve(import.meta.dirname, "..");
const buf = path.join(root, "node_modules/.bin/buf");
const run = promisify(execFile);
let workspace: string;

beforeAll(async () => {
  workspace = await mkdtemp(path.join(tmpdir(), "contract-"));
  await cp(path.join(root, "proto"), path.join(workspace, "proto"), { recursive: true });
  await cp(path.join(root, "buf.yaml"), path.join(workspace, "buf.yaml"));
});

afterAll(() => rm(workspace, { recursive: true, force: true }));

async function breaking(): Promise<{ ok: boolean; output: string }> {
  return run(buf, ["breaking", "--against", path.join(root, "contract/released.binpb")], { cwd: workspace }).then(
    ({ stdout }) => ({ ok: true, output: stdout }),
    (error: { stdout: string }) => ({ ok: false, output: error.stdout }),
  );
}

async function edit(file: string, from: string, to: string): Promise<void> {
  const target = path.join(workspace, "proto", file);
  const text = await readFile(target, "utf8");
  expect(text).toContain(from);
  await writeFile(target, text.replace(from, to));
}

describe("the released contract", () => {
  it("matches proto/ now", async () => {
    expect(await breaking()).toMatchObject({ ok: true });
  });

  it("accepts an added field", async () => {
    await edit("entitlements/v1/plan.proto", "  repeated Quota quotas = 7;\n", "  repeated Quota quotas = 7;\n  // A new field.\n  string tagline = 99;\n");
    expect(await breaking()).toMatchObject({ ok: true });
  });

  it("refuses a removed field", async () => {
    await edit("entitlements/v1/plan.proto", "  string display_name = 2;", "  reserved 2;");
    const result = await breaking();
    expect(result.ok).toBe(false);
    expect(result.output).toContain('"display_name"');
  });
});
