import http from "node:http";
import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/**
 * A stress test for connection reuse: parallel callers share a few HTTP/1.1 keep-alive
 * connections while the server answers some calls before it has read their bodies (a refused
 * credential, a message over the size limit) and answers others with errors big enough to be
 * compressed. Every call has a deadline, and a call that reaches it is a hang. This is the
 * reproduction of the rare keep-alive hang: run against the parent of 689ae6f, every compressed
 * refusal (and a few calls queued behind one on its connection) waited until its deadline, in
 * each of two runs. The cause was ours: the call observer parsed a gzip error body as JSON and
 * threw, and nothing answered the call.
 */
const WORKERS = 16;
const ROUNDS = 40;
const DEADLINE_MS = 8000;
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
});

type Outcome = { readonly kind: string; readonly code: Code | "ok" };

/** One Connect client per credential, all on one keep-alive agent with few sockets. */
function clientsOn(agent: http.Agent): Record<"good" | "bad", Client<typeof EntitlementService>> {
  const make = (token: string) =>
    createClient(
      EntitlementService,
      createConnectTransport({
        baseUrl: server.httpUrl,
        httpVersion: "1.1",
        nodeOptions: { agent },
        interceptors: [(next) => (request) => (request.header.set("authorization", `Bearer ${token}`), next(request))],
      }),
    );
  return { good: make(SERVICE_TOKEN), bad: make("not-the-token") };
}

/** A plain HTTP/1.1 request on `agent`, its body sent whole; resolves with the status. */
function rawRequest(agent: http.Agent, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: "127.0.0.1", port: server.listener.httpPort, method, path, headers, agent, timeout: DEADLINE_MS }, (response) => {
      response.resume();
      response.on("end", () => resolve(response.statusCode ?? 0));
    });
    request.on("timeout", () => request.destroy(new Error(`${method} ${path}: no answer within ${DEADLINE_MS} ms`)));
    request.on("error", reject);
    request.end(body);
  });
}

describe("HTTP/1.1 keep-alive connections under parallel load", () => {
  it("answers every call, early refusals and compressed errors included, without a hang", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const clients = clientsOn(agent);
    // With the longest user id, a refusal (message and QuotaFailure) passes the 1 KiB compression floor.
    const heavy = `keep-alive-${"x".repeat(117)}`;
    const options = { timeoutMs: DEADLINE_MS };
    const kinds: Record<string, () => Promise<unknown>> = {
      read: () => clients.good.getPlan({ userId: "keep-alive-reader" }, options),
      increment: () => clients.good.incrementUsage({ userId: "keep-alive-writer", metric: "compute_minutes", amount: 1n }, options),
      "compressed refusal": () => clients.good.incrementUsage({ userId: heavy, metric: "jobs", amount: 1_000_000n }, options),
      "refused credential, 256 KiB body unread": () => clients.bad.checkQuota({ userId: "u".repeat(256 * 1024), metric: "jobs" }, options),
      "message over the limit": () => clients.good.checkQuota({ userId: "u".repeat(1024 * 1024 + 16), metric: "jobs" }, options),
      "/v1 refused credential, body unread": () =>
        rawRequest(agent, "POST", "/v1/subscription/me:upgrade", { authorization: "Bearer nope", "content-type": "application/json" }, Buffer.from(JSON.stringify({ planCode: "p".repeat(200_000) }))),
      "/v1 read": () => rawRequest(agent, "GET", "/v1/plans", {}),
    };
    // The refusal really is compressed, or this would not test that path.
    const refusal = await fetch(`${server.httpUrl}/entitlements.v1.EntitlementService/IncrementUsage`, {
      method: "POST",
      headers: { authorization: `Bearer ${SERVICE_TOKEN}`, "content-type": "application/json", "accept-encoding": "gzip" },
      body: JSON.stringify({ userId: heavy, metric: "jobs", amount: "1000000" }),
    });
    expect([refusal.status, refusal.headers.get("content-encoding")]).toEqual([429, "gzip"]);
    await refusal.arrayBuffer();
    const names = Object.keys(kinds);
    const outcomes: Outcome[] = [];
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: WORKERS }, async (_, worker) => {
        for (let round = 0; round < ROUNDS; round++) {
          const kind = names[(worker + round) % names.length]!;
          try {
            await kinds[kind]!();
            outcomes.push({ kind, code: "ok" });
          } catch (error) {
            if (!(error instanceof ConnectError)) {
              failures.push(`${kind}: ${String(error)}`);
              continue;
            }
            outcomes.push({ kind, code: error.code });
            if (error.code === Code.DeadlineExceeded || error.code === Code.Unavailable || error.code === Code.Internal) {
              failures.push(`${kind}: ${Code[error.code]} ${error.message}`);
            }
          }
        }
      }),
    );
    agent.destroy();
    expect(failures).toEqual([]);
    const codesOf = (kind: string) => new Set(outcomes.filter((outcome) => outcome.kind === kind).map((outcome) => outcome.code));
    expect(outcomes).toHaveLength(WORKERS * ROUNDS - failures.length);
    expect(codesOf("read")).toEqual(new Set(["ok"]));
    expect(codesOf("compressed refusal")).toEqual(new Set([Code.ResourceExhausted]));
    expect(codesOf("refused credential, 256 KiB body unread")).toEqual(new Set([Code.Unauthenticated]));
    expect(codesOf("message over the limit")).toEqual(new Set([Code.ResourceExhausted]));
  }, 120_000);
});
