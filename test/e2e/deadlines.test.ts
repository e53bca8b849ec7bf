import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { requestTimeoutMs } from "../../src/transport/call-lifecycle.ts";
import { createEntitlementClient } from "../../clients/node/src/index.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/** A caller's deadline bounds the database work it causes, not just the wait for the answer. */
let server: TestServer;
let blocker: pg.Client;
const clients: Record<"connect" | "grpc", Client<typeof EntitlementService>> = {} as never;

beforeAll(async () => {
  server = await startTestServer();
  clients.connect = createEntitlementClient({ baseUrl: server.httpUrl, token: SERVICE_TOKEN, protocol: "connect", timeoutMs: 30_000 });
  clients.grpc = createEntitlementClient({ baseUrl: `http://127.0.0.1:${server.listener.grpcPort}`, token: SERVICE_TOKEN, timeoutMs: 30_000 });
  blocker = new pg.Client({ connectionString: server.sessionUrl });
  await blocker.connect();
});

afterAll(() => blocker.end());

async function waitingServiceQueries(): Promise<number> {
  const result = await blocker.query(
    "select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and wait_event_type = 'Lock'",
  );
  return (result.rows[0] as { n: number }).n;
}

describe("requestTimeoutMs", () => {
  it("reads Connect's and gRPC's deadline headers", () => {
    expect(requestTimeoutMs(new Headers({ "connect-timeout-ms": "250" }))).toBe(250);
    expect(requestTimeoutMs(new Headers({ "grpc-timeout": "2S" }))).toBe(2000);
    expect(requestTimeoutMs(new Headers({ "grpc-timeout": "150m" }))).toBe(150);
    expect(requestTimeoutMs(new Headers({ "grpc-timeout": "1M" }))).toBe(60_000);
    expect(requestTimeoutMs(new Headers({ "grpc-timeout": "nonsense" }))).toBeUndefined();
    expect(requestTimeoutMs(new Headers())).toBeUndefined();
  });
});

describe.each(["connect", "grpc"] as const)("a short deadline over %s", (protocol) => {
  it("ends the database work with the call, long before the statement timeout", async () => {
    const client = clients[protocol];
    const userId = `deadline-${protocol}`;
    await client.incrementUsage({ userId, metric: "jobs", amount: 1n });
    await blocker.query("begin");
    await blocker.query("lock table usage_counters in access exclusive mode");
    try {
      const started = performance.now();
      const error = await client.incrementUsage({ userId, metric: "jobs", amount: 1n }, { timeoutMs: 300 }).catch((e: unknown) => ConnectError.from(e));
      expect(error).toMatchObject({ code: Code.DeadlineExceeded });
      expect(performance.now() - started).toBeLessThan(1500);
      // The statement timeout is 5 s; the query must not outlive the caller's 300 ms by much.
      await expect.poll(waitingServiceQueries, { timeout: 1500, interval: 50 }).toBe(0);
    } finally {
      await blocker.query("rollback");
    }
    const after = await client.incrementUsage({ userId, metric: "jobs", amount: 1n }, { timeoutMs: 300 });
    expect(after.quota?.used).toBe(2n);
  });
});
