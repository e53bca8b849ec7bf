import { beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.ts";
import { userToken } from "../support/service.ts";

const APP = "https://app.example.com";
let server: TestServer;
let withoutCors: TestServer;

beforeAll(async () => {
  [server, withoutCors] = await Promise.all([startTestServer({ corsOrigins: [APP] }), startTestServer()]);
});

const preflight = (base: TestServer, path: string, origin: string) =>
  fetch(`${base.httpUrl}${path}`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type,connect-protocol-version" },
  });

describe("CORS on the HTTP port", () => {
  it("answers a preflight from an allowed origin with the methods and headers the protocols use", async () => {
    const answer = await preflight(server, "/entitlements.v1.SubscriptionService/GetMySubscription", APP);
    expect(answer.status).toBe(204);
    expect(answer.headers.get("access-control-allow-origin")).toBe(APP);
    expect(answer.headers.get("access-control-allow-headers")?.split(",")).toEqual(expect.arrayContaining(["Authorization", "Content-Type", "Connect-Protocol-Version"]));
    expect(answer.headers.get("access-control-allow-methods")).toContain("PATCH");
    expect(answer.headers.get("access-control-max-age")).toBe("7200");
  });

  it("names the origin and the headers a script may read on answers, /v1 and Connect alike", async () => {
    const plans = await fetch(`${server.httpUrl}/v1/subscription/plans`, { headers: { origin: APP } });
    expect(plans.status).toBe(200);
    expect(plans.headers.get("access-control-allow-origin")).toBe(APP);
    expect(plans.headers.get("vary")).toContain("Origin");
    expect(plans.headers.get("access-control-expose-headers")?.split(",")).toEqual(expect.arrayContaining(["X-Request-Id", "ETag", "Grpc-Status"]));
    const me = await fetch(`${server.httpUrl}/entitlements.v1.SubscriptionService/GetMySubscription`, {
      method: "POST",
      headers: { origin: APP, "content-type": "application/json", authorization: `Bearer ${await userToken("cors-ann")}` },
      body: "{}",
    });
    expect([me.status, me.headers.get("access-control-allow-origin")]).toEqual([200, APP]);
  });

  it("says nothing to other origins, nor anything at all unless CORS_ORIGINS is set", async () => {
    expect((await preflight(server, "/v1/subscription/me", "https://evil.example.com")).headers.get("access-control-allow-origin")).toBeNull();
    expect((await fetch(`${server.httpUrl}/v1/subscription/plans`, { headers: { origin: "https://evil.example.com" } })).headers.get("access-control-allow-origin")).toBeNull();
    const plain = await fetch(`${withoutCors.httpUrl}/v1/subscription/plans`, { headers: { origin: APP } });
    expect([plain.status, plain.headers.get("access-control-allow-origin")]).toEqual([200, null]);
  });
});
