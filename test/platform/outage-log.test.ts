import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/platform/logger.ts";
import { OutageLog } from "../../src/platform/outage-log.ts";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describe("OutageLog", () => {
  it("logs a dependency down once, a reminder every period while it stays down, and once back", () => {
    const { logger, lines } = capture();
    let now = 0;
    const outages = new OutageLog(logger, { down: "db down", stillDown: "db still down", back: "db back" }, { remindEveryMs: 30_000, now: () => now });
    outages.up();
    for (now = 0; now < 65_000; now += 250) outages.down(new Error("connect ECONNREFUSED 127.0.0.1:5432"));
    outages.up();
    outages.up();
    expect(lines.map((line) => [line.msg, line.reason, line.downForMs])).toEqual([
      ["db down", "connect ECONNREFUSED 127.0.0.1:5432", undefined],
      ["db still down", "connect ECONNREFUSED 127.0.0.1:5432", 30_000],
      ["db still down", "connect ECONNREFUSED 127.0.0.1:5432", 60_000],
      ["db back", undefined, 65_000],
    ]);
    expect(JSON.stringify(lines)).not.toContain("    at ");
  });
});
