import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createContextValues, type ConnectRouter } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { EntitlementService } from "../../../gen/entitlements/v1/entitlement_service_pb.js";
import { createLogger } from "../../../src/platform/logger.ts";
import { Metrics } from "../../../src/platform/metrics.ts";
import { createNodeHandler } from "../../../src/transport/connect/node-handler.ts";

/**
 * The node handler reads the code of every Connect error for the request log; whatever the
 * error's size and whether it is compressed, the log has its code and the caller gets it whole.
 */
const LONG_MESSAGE = "x".repeat(200_000);
const loggedCodes: unknown[] = [];
let server: http.Server;
let baseUrl: string;

beforeAll(async () => {
  const routes = (router: ConnectRouter) =>
    router.service(EntitlementService, {
      getPlan: (request) => {
        throw new ConnectError(request.userId === "long" ? LONG_MESSAGE : "short", Code.FailedPrecondition);
      },
    });
  const handler = createNodeHandler({
    routes,
    routerOptions: {},
    contextValues: () => createContextValues(),
    fallback: (_, response) => {
      response.statusCode = 404;
      response.end();
    },
    logger: createLogger(
      "info",
      new Writable({
        write(chunk: Buffer, _, done) {
          for (const line of chunk.toString().split("\n").filter(Boolean)) loggedCodes.push((JSON.parse(line) as { code?: unknown }).code);
          done();
        },
      }),
    ),
    metrics: new Metrics(),
  });
  server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

describe("createNodeHandler", () => {
  it.each([
    ["compressed (the client accepts gzip)", ["gzip"] as const],
    ["uncompressed", [] as const],
  ])("passes a Connect error of 200 kB to the caller and its code to the log, %s", async (_, acceptCompression) => {
    const transport = createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      ...(acceptCompression.length === 0 ? { acceptCompression: [] } : {}),
    });
    const client = createClient(EntitlementService, transport);
    for (const [userId, message] of [
      ["long", LONG_MESSAGE],
      ["short", "short"],
    ] as const) {
      const error = await client.getPlan({ userId }, { timeoutMs: 5000 }).catch((caught: unknown) => ConnectError.from(caught));
      expect(error).toMatchObject({ code: Code.FailedPrecondition, rawMessage: message });
    }
    await expect.poll(() => loggedCodes.length).toBe(2);
    expect(loggedCodes.splice(0)).toEqual(["failed_precondition", "failed_precondition"]);
  });
});
