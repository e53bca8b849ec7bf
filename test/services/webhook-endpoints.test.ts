import { beforeAll, describe, expect, it } from "vitest";
import { Code, type Client } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AdminService, ListWebhookEndpointsResponseSchema } from "../../gen/entitlements/v1/admin_service_pb.js";
import { WebhookDeliveryState } from "../../gen/entitlements/v1/webhooks_pb.js";
import { refusal } from "../support/refusals.ts";
import { adminClient, startTestServer, type TestServer } from "../support/server.ts";
import { userToken } from "../support/service.ts";

let server: TestServer;
let admin: Client<typeof AdminService>;
let rootToken: string;

beforeAll(async () => {
  server = await startTestServer();
  await server.administration.setSuperadmin("cli", "root", true);
  rootToken = await userToken("root", { expiresIn: "1h" });
  admin = adminClient(server, rootToken);
});

describe("AdminService webhook endpoints", () => {
  it("are made with a secret shown once, listed without it, and deleted (twice is no error)", async () => {
    const made = await admin.createWebhookEndpoint({ url: "https://hooks.example.com/entitlements", eventTypes: ["usage.threshold_crossed", "usage.threshold_crossed"] });
    expect(made.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(made.endpoint).toMatchObject({ url: "https://hooks.example.com/entitlements", eventTypes: ["usage.threshold_crossed"], fromConfiguration: false });
    const listed = await admin.listWebhookEndpoints({});
    expect(listed.endpoints.map((endpoint) => endpoint.id)).toContain(made.endpoint!.id);
    expect(JSON.stringify(toJson(ListWebhookEndpointsResponseSchema, listed))).not.toContain(made.secret);
    expect((await admin.listWebhookDeliveries({ endpointId: made.endpoint!.id })).deliveries).toEqual([]);
    expect((await admin.deleteWebhookEndpoint({ endpointId: made.endpoint!.id })).endpoint?.id).toBe(made.endpoint!.id);
    expect((await admin.deleteWebhookEndpoint({ endpointId: made.endpoint!.id })).endpoint).toBeUndefined();
  });

  it("get a new secret on rotation, shown once, with when the replaced one stops signing", async () => {
    const made = await admin.createWebhookEndpoint({ url: "https://hooks.example.com/rotated" });
    const endpointId = made.endpoint!.id;
    const rotated = await admin.rotateWebhookSecret({ endpointId });
    expect(rotated.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(rotated.secret).not.toBe(made.secret);
    // A day unless told.
    expect(timestampDate(rotated.endpoint!.previousSecretExpiresAt!)).toEqual(new Date(server.clock.now().getTime() + 86_400_000));
    const listed = await admin.listWebhookEndpoints({});
    expect(JSON.stringify(toJson(ListWebhookEndpointsResponseSchema, listed))).not.toContain(rotated.secret);
    expect((await admin.rotateWebhookSecret({ endpointId, overlapSeconds: 0 })).endpoint?.previousSecretExpiresAt).toBeUndefined();
    for (const overlapSeconds of [-1, 604_801]) {
      const error = await refusal(admin.rotateWebhookSecret({ endpointId, overlapSeconds }));
      expect([error.code, error.rawMessage]).toEqual([Code.InvalidArgument, expect.stringContaining("overlap_seconds")]);
    }
    expect((await refusal(admin.rotateWebhookSecret({ endpointId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.NotFound);
    const audit = await admin.listAuditEvents({});
    expect(audit.events.find((event) => event.action === "webhook.rotate_secret")?.details).toMatchObject({ endpoint_id: endpointId, overlap_seconds: "0" });
    await admin.deleteWebhookEndpoint({ endpointId });
  });

  it("change what update_mask names, keeping their secret, and refuse a mask that names nothing or something else", async () => {
    const made = await admin.createWebhookEndpoint({ url: "https://hooks.example.com/before", eventTypes: ["account.suspended"] });
    const endpointId = made.endpoint!.id;
    const paused = await admin.updateWebhookEndpoint({ endpointId, paused: true, url: "https://ignored.example.com/", updateMask: { paths: ["paused"] } });
    expect(paused.endpoint).toMatchObject({ url: "https://hooks.example.com/before", eventTypes: ["account.suspended"] });
    expect(timestampDate(paused.endpoint!.pausedAt!)).toEqual(server.clock.now());
    const changed = await admin.updateWebhookEndpoint({ endpointId, url: "https://hooks.example.com/after", eventTypes: [], paused: false, updateMask: { paths: ["url", "event_types", "paused"] } });
    expect(changed.endpoint).toMatchObject({ url: "https://hooks.example.com/after", eventTypes: [] });
    expect(changed.endpoint?.pausedAt).toBeUndefined();
    const refused: [Parameters<typeof admin.updateWebhookEndpoint>[0], string][] = [
      [{ endpointId, paused: true }, "update_mask"],
      [{ endpointId, updateMask: { paths: ["paused", "secret"] } }, "update_mask.paths[1]"],
      [{ endpointId, url: "ftp://x", updateMask: { paths: ["url"] } }, "url"],
      [{ endpointId, eventTypes: ["plan.bought"], updateMask: { paths: ["event_types"] } }, "event_types[0]"],
    ];
    for (const [request, field] of refused) {
      const error = await refusal(admin.updateWebhookEndpoint(request));
      expect([error.code, error.rawMessage]).toEqual([Code.InvalidArgument, expect.stringContaining(`${field}:`)]);
    }
    const missing = await refusal(admin.updateWebhookEndpoint({ endpointId: "00000000-0000-4000-8000-000000000000", paused: true, updateMask: { paths: ["paused"] } }));
    expect(missing.code).toBe(Code.NotFound);
    expect((await refusal(admin.testWebhookEndpoint({ endpointId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.NotFound);
    const audit = await admin.listAuditEvents({});
    expect(audit.events.find((event) => event.action === "webhook.update")?.details).toMatchObject({ endpoint_id: endpointId, paused: "false", event_types: "" });
    await admin.deleteWebhookEndpoint({ endpointId });
  });

  it("refuse what is not an http(s) URL or an event type, naming the field", async () => {
    for (const url of ["ftp://example.com/x", "not a url", "/relative", `https://example.com/${"x".repeat(2048)}`]) {
      const error = await refusal(admin.createWebhookEndpoint({ url }));
      expect([error.code, error.rawMessage]).toEqual([Code.InvalidArgument, expect.stringContaining("url:")]);
    }
    const error = await refusal(admin.createWebhookEndpoint({ url: "https://example.com/x", eventTypes: ["entitlements.plan_changed", "plan.bought"] }));
    expect([error.code, error.rawMessage]).toEqual([Code.InvalidArgument, expect.stringContaining("event_types[1]")]);
    expect((await refusal(admin.listWebhookDeliveries({ endpointId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.NotFound);
    expect((await refusal(admin.deleteWebhookEndpoint({ endpointId: "nope" }))).code).toBe(Code.InvalidArgument);
    expect((await refusal(admin.retryWebhookDeliveries({ endpointId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.NotFound);
    const made = await admin.createWebhookEndpoint({ url: "https://example.com/retried" });
    for (const seconds of [-1n, 253_402_300_800n, 9_000_000_000_000_000n]) {
      const error = await refusal(admin.retryWebhookDeliveries({ endpointId: made.endpoint!.id, since: { seconds, nanos: 0 } }));
      expect([error.code, error.rawMessage]).toEqual([Code.InvalidArgument, expect.stringContaining("since:")]);
    }
    expect((await admin.retryWebhookDeliveries({ endpointId: made.endpoint!.id, since: { seconds: 0n, nanos: 0 } })).retried).toBe(0);
    expect((await admin.listWebhookDeliveries({ endpointId: made.endpoint!.id, state: WebhookDeliveryState.FAILED })).deliveries).toEqual([]);
    const unknownState = await refusal(admin.listWebhookDeliveries({ endpointId: made.endpoint!.id, state: 7 as WebhookDeliveryState }));
    expect([unknownState.code, unknownState.rawMessage]).toEqual([Code.InvalidArgument, expect.stringContaining("state:")]);
    await admin.deleteWebhookEndpoint({ endpointId: made.endpoint!.id });
  });

  it("are for superadmins only", async () => {
    const plain = adminClient(server, await userToken("someone"));
    expect((await refusal(plain.createWebhookEndpoint({ url: "https://example.com/x" }))).code).toBe(Code.PermissionDenied);
    expect((await refusal(plain.listWebhookEndpoints({}))).code).toBe(Code.PermissionDenied);
    expect((await refusal(plain.rotateWebhookSecret({ endpointId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.PermissionDenied);
    expect((await refusal(plain.retryWebhookDeliveries({ endpointId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.PermissionDenied);
    expect((await refusal(plain.updateWebhookEndpoint({ endpointId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.PermissionDenied);
    expect((await refusal(plain.testWebhookEndpoint({ endpointId: "00000000-0000-4000-8000-000000000000" }))).code).toBe(Code.PermissionDenied);
  });

  it("are served on /v1, changes, tests, rotation, retries and deletion included", async () => {
    const headers = { authorization: `Bearer ${rootToken}`, "content-type": "application/json" };
    const made = await fetch(`${server.httpUrl}/v1/admin/webhooks`, { method: "POST", headers, body: JSON.stringify({ url: "http://127.0.0.1:9/hook" }) });
    expect(made.status).toBe(200);
    const { endpoint } = (await made.json()) as { endpoint: { id: string } };
    const patched = await fetch(`${server.httpUrl}/v1/admin/webhooks/${endpoint.id}`, { method: "PATCH", headers, body: JSON.stringify({ paused: true, updateMask: "paused" }) });
    expect([patched.status, ((await patched.json()) as { endpoint: { pausedAt?: string } }).endpoint.pausedAt]).toEqual([200, expect.any(String)]);
    const tested = await fetch(`${server.httpUrl}/v1/admin/webhooks/${endpoint.id}:test`, { method: "POST", headers, body: "{}" });
    expect([tested.status, await tested.json()]).toEqual([200, { delivered: false, status: 0, error: expect.any(String), messageId: expect.stringMatching(/^[0-9a-f-]{36}$/) }]);
    const rotated = await fetch(`${server.httpUrl}/v1/admin/webhooks/${endpoint.id}:rotateSecret`, { method: "POST", headers, body: JSON.stringify({ overlapSeconds: 60 }) });
    expect(rotated.status).toBe(200);
    expect(await rotated.json()).toMatchObject({ secret: expect.stringMatching(/^whsec_/), endpoint: { id: endpoint.id, previousSecretExpiresAt: expect.any(String) } });
    const retried = await fetch(`${server.httpUrl}/v1/admin/webhooks/${endpoint.id}/deliveries:retry`, { method: "POST", headers, body: JSON.stringify({ since: "2026-01-01T00:00:00Z" }) });
    expect([retried.status, await retried.json()]).toEqual([200, { retried: 0 }]);
    const deliveries = await fetch(`${server.httpUrl}/v1/admin/webhooks/${endpoint.id}/deliveries`, { headers });
    expect(await deliveries.json()).toEqual({ deliveries: [], nextPageToken: "" });
    const failed = await fetch(`${server.httpUrl}/v1/admin/webhooks/${endpoint.id}/deliveries?state=WEBHOOK_DELIVERY_STATE_FAILED`, { headers });
    expect([failed.status, await failed.json()]).toEqual([200, { deliveries: [], nextPageToken: "" }]);
    const deleted = await fetch(`${server.httpUrl}/v1/admin/webhooks/${endpoint.id}`, { method: "DELETE", headers });
    expect(deleted.status).toBe(200);
    expect((await admin.listWebhookEndpoints({})).endpoints.map((e) => e.id)).not.toContain(endpoint.id);
  });
});

