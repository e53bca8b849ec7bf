import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { create, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AdminService } from "../../gen/entitlements/v1/admin_service_pb.js";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { SubscriptionService } from "../../gen/entitlements/v1/subscription_service_pb.js";
import { messageArbitrary } from "../support/message-arbitrary.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { SERVICE_TOKEN, userToken } from "../support/service.ts";

/**
 * Every RPC of every service, fuzzed with valid credentials so the requests reach the handlers:
 * whatever comes in, the answer is a result or a caller error, never a crash, internal or unknown.
 */
let server: TestServer;
const credentials = new Map<DescService, string>();

beforeAll(async () => {
  server = await startTestServer();
  await server.administration.setSuperadmin("cli", "root", true);
  credentials.set(EntitlementService, SERVICE_TOKEN);
  credentials.set(SubscriptionService, await userToken("fuzzed-user", { expiresIn: "1h" }));
  credentials.set(AdminService, await userToken("root", { expiresIn: "1h" }));
});

// A call that hangs until its deadline is a fault too.
const SERVER_FAULTS = new Set([Code.Internal, Code.Unknown, Code.Unimplemented, Code.DataLoss, Code.DeadlineExceeded]);

/** A unary call's answer; a stream's first message (then the stream is cancelled). */
async function answerOf(call: (request: unknown, options: unknown) => Promise<unknown> | AsyncIterable<unknown>, request: unknown, headers: Headers): Promise<void> {
  const abort = new AbortController();
  const answer = call(request, { headers, timeoutMs: 20_000, signal: abort.signal });
  if (answer instanceof Promise) {
    await answer;
    return;
  }
  try {
    for await (const _ of answer) break;
  } finally {
    abort.abort();
  }
}

describe.each([EntitlementService, SubscriptionService, AdminService])("$typeName", (service) => {
  it.each(service.methods.map((method) => [method.name, method] as const))("%s answers any request without a server fault", async (_, method) => {
    const transport = createConnectTransport({ baseUrl: server.httpUrl, httpVersion: "1.1", useBinaryFormat: true });
    const client = createClient(service, transport) as unknown as Record<string, (request: unknown, options: unknown) => Promise<unknown> | AsyncIterable<unknown>>;
    const headers = new Headers({ authorization: `Bearer ${credentials.get(service)}` });
    await fc.assert(
      fc.asyncProperty(messageArbitrary(method.input), async (init) => {
        const request = create(method.input, init as never);
        const outcome = await answerOf(client[method.localName]!, request, headers).then(
          () => undefined,
          (error: unknown) => ConnectError.from(error),
        );
        if (outcome !== undefined && SERVER_FAULTS.has(outcome.code)) {
          throw new Error(`${method.name} answered ${Code[outcome.code]}: ${outcome.rawMessage}`);
        }
      }),
      { numRuns: 60 },
    );
  }, 90_000);
});

describe("malformed wire input", () => {
  const rpcUrl = () => `${server.httpUrl}/entitlements.v1.EntitlementService/IncrementUsage`;

  it("never gets a 5xx for random protobuf bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        const response = await fetch(rpcUrl(), {
          method: "POST",
          headers: { "content-type": "application/proto", authorization: `Bearer ${SERVICE_TOKEN}` },
          body: bytes,
        });
        expect(response.status).toBeLessThan(500);
      }),
      { numRuns: 100 },
    );
  });

  it("never gets a 5xx for malformed JSON", async () => {
    const json = fc.oneof(
      fc.string({ maxLength: 100 }),
      fc.json().map((text) => text.slice(0, -1)),
      fc.jsonValue().map((value) => JSON.stringify(value)),
      fc.constantFrom('{"userId":', '{"amount":"1e400"}', '{"amount":1.5}', '{"userId":{"$ne":null}}', "null", "[]", '{"metric":"jobs","amount":"-0"}'),
    );
    await fc.assert(
      fc.asyncProperty(json, async (body) => {
        const response = await fetch(rpcUrl(), {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${SERVICE_TOKEN}` },
          body,
        });
        expect(response.status).toBeLessThan(500);
      }),
      { numRuns: 100 },
    );
  });

  it("never gets a 5xx on /v1 paths, whatever the path, query or body", async () => {
    const token = await userToken("root", { expiresIn: "1h" });
    const path = fc.oneof(
      fc.constantFrom("/v1/subscription/me", "/v1/subscription/usage", "/v1/subscription/plans", "/v1/admin/accounts", "/v1/admin/stats"),
      fc.webPath().map((p) => `/v1${p}`),
      fc.constantFrom("/v1/admin/accounts/%ZZ", "/v1/admin/accounts/a%2Fb:suspend", "/v1/admin/accounts/x:resetUsage", "/v1/admin/accounts/:suspend"),
    );
    const query = fc.oneof(fc.constant(""), fc.webQueryParameters().map((q) => `?${q}`), fc.constantFrom("?page_size=-1", "?status=7", "?page_token=%%%", "?query=%00"));
    await fc.assert(
      fc.asyncProperty(path, query, fc.constantFrom("GET", "POST", "PUT", "DELETE"), fc.option(fc.string({ maxLength: 80 })), async (p, q, method, body) => {
        const response = await fetch(`${server.httpUrl}${p}${q}`, {
          method,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: method === "GET" || body === null ? undefined : body,
        });
        expect(response.status, `${method} ${p}${q}`).toBeLessThan(500);
      }),
      { numRuns: 150 },
    );
  });
});
