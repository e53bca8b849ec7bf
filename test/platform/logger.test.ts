import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { TurnBatchedDestination } from "../../src/platform/logger.ts";

const logger = fileURLToPath(new URL("../../src/platform/logger.ts", import.meta.url));

/** A stand-in for sonic-boom: what it was handed, write by write, and what it flushed. */
function target() {
  const writes: string[] = [];
  const flushed: string[] = [];
  return {
    writes,
    flushed,
    destroyed: false,
    write: (text: string) => (writes.push(text), true),
    flush: (callback?: () => void) => (flushed.push("flush"), callback?.()),
    flushSync: () => void flushed.push("flushSync"),
  };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("TurnBatchedDestination", () => {
  it("hands the lines of one turn of the event loop over in one write, in order", async () => {
    const sink = target();
    const destination = new TurnBatchedDestination(sink);
    destination.write("a\n");
    destination.write("b\n");
    destination.write("c\n");
    expect(sink.writes).toEqual([]);
    await nextTurn();
    destination.write("d\n");
    await nextTurn();
    expect(sink.writes).toEqual(["a\nb\nc\n", "d\n"]);
  });

  it("writes what is pending at once on flushSync, and flushes nothing when nothing is", async () => {
    const sink = target();
    const destination = new TurnBatchedDestination(sink);
    destination.flushSync();
    expect(sink.flushed).toEqual([]);
    destination.write("a\n");
    destination.flushSync();
    expect(sink.writes).toEqual(["a\n"]);
    expect(sink.flushed).toEqual(["flushSync"]);
    await nextTurn();
    expect(sink.writes).toEqual(["a\n"]);
  });

  it("keeps the lines logged just before the process exits", async () => {
    const script = `import { createLogger } from ${JSON.stringify(logger)};
const log = createLogger("info");
log.info("first");
createLogger("info").info("second");
process.exit(3);`;
    const result = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script]).catch((error: { code: number; stdout: string }) => error);
    expect(result).toMatchObject({ code: 3 });
    expect(result.stdout.trim().split("\n").map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(["first", "second"]);
  });
});
