import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { createEntitlementClient } from "../../clients/node/src/index.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/** A database that stops answering: calls end quickly and cleanly, and nothing piles up. */
const MAX_IN_FLIGHT = 5;
const STATEMENT_TIMEOUT_MS = 300;
let server: TestServer;
let client: Client<typeof EntitlementService>;
let blocker: pg.Client;

beforeAll(async () => {
  server = await startTestServer({ maxInFlight: MAX_IN_FLIGHT, pool: { statementTimeoutMs: STATEMENT_TIMEOUT_MS } });
  client = createEntitlementClient({ baseUrl: server.httpUrl, token: SERVICE_TOKEN, protocol: "connect", timeoutMs: 30_000 });
  blocker = new pg.Client({ connectionString: server.sessionUrl });
  await blocker.connect();
});

afterAll(() => blocker.end());

describe("a database that hangs", () => {
  it("gives deadline_exceeded from the statement timeout, sheds the excess, and recovers", async () => {
    await client.incrementUsage({ userId: "hot", metric: "jobs", amount: 1n });
    await blocker.query("begin");
    await blocker.query("lock table usage_counters in access exclusive mode");
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () =>
        client.incrementUsage({ userId: "hot", metric: "jobs", amount: 1n }).then(
          () => "ok",
          (error: unknown) => Code[ConnectError.from(error).code],
        ),
      ),
    );
    const elapsed = performance.now() - started;
    await blocker.query("rollback");

    const counts = Object.fromEntries(["DeadlineExceeded", "Unavailable", "ok"].map((code) => [code, outcomes.filter((o) => o === code).length]));
    expect(counts.ok).toBe(0);
    expect(counts.DeadlineExceeded).toBeGreaterThanOrEqual(1);
    expect(counts.DeadlineExceeded).toBeLessThanOrEqual(MAX_IN_FLIGHT);
    expect(counts.Unavailable).toBe(20 - counts.DeadlineExceeded!);
    // Bounded by the statement timeout, not by the lock: well under the time the lock was held.
    expect(elapsed).toBeLessThan(STATEMENT_TIMEOUT_MS * 10);

    const after = await client.incrementUsage({ userId: "hot", metric: "jobs", amount: 1n });
    expect(after.quota?.used).toBe(2n);
  });
});
