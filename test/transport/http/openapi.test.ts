import { beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../../gen/entitlements/v1/admin_service_pb.js";
import { SubscriptionService } from "../../../gen/entitlements/v1/subscription_service_pb.js";
import { httpBindings } from "../../../src/transport/http/bindings.ts";
import { startTestServer, type TestServer } from "../../support/server.ts";

type Document = {
  openapi: string;
  paths: Record<string, Record<string, { security: unknown[]; responses: Record<string, unknown>; parameters: { name: string; in: string }[] }>>;
  components: { schemas: Record<string, { properties?: Record<string, Record<string, unknown>> }> };
};

let server: TestServer;
let document: Document;
beforeAll(async () => {
  server = await startTestServer();
  const response = await fetch(`${server.httpUrl}/v1/openapi.json`);
  expect(response.status).toBe(200);
  document = (await response.json()) as Document;
});

describe("/v1/openapi.json", () => {
  it("describes every /v1 route the annotations declare, with its method", () => {
    expect(document.openapi).toBe("3.1.0");
    const declared = [SubscriptionService, AdminService].flatMap((service) =>
      service.methods.flatMap((method) => httpBindings(method).map((binding) => `${binding.httpMethod} ${binding.template}`)),
    );
    const documented = Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual(declared.sort());
  });

  it("marks only the public endpoint as needing no credential", () => {
    expect(document.paths["/v1/subscription/plans"]!.get!.security).toEqual([]);
    expect(document.paths["/v1/subscription/me"]!.get!.security).toEqual([{ bearerAuth: [] }]);
    expect(document.paths["/v1/admin/stats"]!.get!.security).toEqual([{ bearerAuth: [] }]);
  });

  it("writes schemas in the proto3 JSON mapping, with the proto comments", () => {
    const plan = document.components.schemas["entitlements.v1.Plan"]!.properties!;
    expect(plan.priceCents).toMatchObject({ type: "string", format: "int64" });
    expect(plan.priceCents!.description).toContain("cents");
    expect(document.components.schemas["entitlements.v1.Subscription"]!.properties!.startedAt).toMatchObject({ type: "string", format: "date-time" });
    expect(document.paths["/v1/admin/accounts"]!.get!.parameters.map((p) => `${p.in}:${p.name}`)).toEqual([
      "query:query",
      "query:plan_code",
      "query:status",
      "query:page_size",
      "query:page_token",
    ]);
  });

  it("resolves every reference", () => {
    const refs = [...JSON.stringify(document).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((match) => match[1]!);
    expect(refs.length).toBeGreaterThan(10);
    for (const name of refs) expect(document.components.schemas[name], name).toBeDefined();
  });
});
