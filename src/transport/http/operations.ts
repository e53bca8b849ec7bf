import { readFileSync } from "node:fs";
import type { HealthMonitor } from "../../app/health-monitor.ts";
import type { Metrics } from "../../platform/metrics.ts";
import { packagePath } from "../../platform/package-files.ts";
import type { NodeRequest, NodeResponse } from "../node-http.ts";

export type Operations = {
  readonly health: HealthMonitor;
  readonly metrics: Metrics;
};

function sendJson(response: NodeResponse, status: number, body: unknown): void {
  response.statusCode = status;
  response.setHeader("content-type", "application/json");
  response.setHeader("cache-control", "no-store");
  response.end(JSON.stringify(body));
}

/**
 * The endpoints for operators, before everything else: `/healthz` (the process is up), `/readyz`
 * (it can serve: the database answers and shutdown has not begun), `/metrics` (Prometheus) and
 * `/v1/openapi.json` (the OpenAPI document of /v1, generated from the proto into gen/).
 */
export function withOperationsEndpoints(
  operations: Operations,
  next: (request: NodeRequest, response: NodeResponse) => void,
): (request: NodeRequest, response: NodeResponse) => void {
  const openApi = readFileSync(packagePath("gen", "openapi", "v1.openapi.json"));
  return (request, response) => {
    const path = request.url?.split("?", 1)[0];
    if (request.method === "GET" || request.method === "HEAD") {
      if (path === "/healthz") {
        sendJson(response, 200, { status: "SERVING" });
        return;
      }
      if (path === "/v1/openapi.json") {
        response.statusCode = 200;
        response.setHeader("content-type", "application/json");
        response.setHeader("cache-control", "public, max-age=300");
        response.end(openApi);
        return;
      }
      if (path === "/metrics") {
        operations.metrics.registry.metrics().then(
          (text) => {
            response.statusCode = 200;
            response.setHeader("content-type", operations.metrics.registry.contentType);
            response.end(text);
          },
          () => sendJson(response, 500, { code: "internal", message: "metrics unavailable" }),
        );
        return;
      }
      if (path === "/readyz") {
        const serving = operations.health.status === "serving";
        sendJson(response, serving ? 200 : 503, { status: serving ? "SERVING" : "NOT_SERVING" });
        return;
      }
    }
    next(request, response);
  };
}
