import type http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { EntitlementService } from "../../../gen/entitlements/v1/entitlement_service_pb.js";
import { releaseFinishedStreams } from "../../../src/transport/grpc/finished-streams.ts";
import { GrpcTestClient } from "../../support/grpc-client.ts";
import { bindGrpcServer } from "../../support/grpc-server.ts";

/** A finished call's HTTP/2 stream keeps no listener that reaches the call. */
let server: grpc.Server;
let client: GrpcTestClient;
let http2Server: http2.Http2Server;
const streams: http2.ServerHttp2Stream[] = [];

beforeAll(async () => {
  const implementation = {
    hasFeature: () => ({ enabled: true, planCode: "free" }),
    getPlan: () => {
      throw new Error("a failing call");
    },
  };
  const bound = await bindGrpcServer(implementation);
  server = bound.server;
  releaseFinishedStreams(server);
  // The same grpc-js internal the release reads: the test watches the streams it serves.
  http2Server = [...(server as unknown as { http2Servers: Map<http2.Http2Server, unknown> }).http2Servers.keys()][0]!;
  http2Server.on("stream", (stream) => streams.push(stream));
  client = new GrpcTestClient(EntitlementService, `127.0.0.1:${bound.port}`);
});

afterAll(() => {
  client.close();
  server.forceShutdown();
});

/** Resolves once every stream seen so far has closed and its close listeners have run. */
async function allClosed(): Promise<void> {
  while (!streams.every((stream) => stream.closed && stream.destroyed)) await new Promise((resolve) => setTimeout(resolve, 5));
  await new Promise((resolve) => setImmediate(resolve));
}

describe("releaseFinishedStreams", () => {
  it("leaves a closed stream only a listener for late errors, whether the call answered or failed", async () => {
    await expect(client.call(EntitlementService.method.hasFeature, { userId: "u", feature: "api_access" })).resolves.toMatchObject({ enabled: true });
    await expect(client.call(EntitlementService.method.getPlan, { userId: "u" })).rejects.toMatchObject({ code: grpc.status.INTERNAL });
    await allClosed();
    expect(streams).toHaveLength(2);
    for (const stream of streams) {
      expect(stream.eventNames()).toEqual(["error"]);
      expect(stream.listenerCount("error")).toBe(1);
    }
  });

  it("keeps serving, and attaches once however often it is called", async () => {
    const before = http2Server.listenerCount("stream");
    releaseFinishedStreams(server);
    expect(http2Server.listenerCount("stream")).toBe(before);
    await expect(client.call(EntitlementService.method.hasFeature, { userId: "u", feature: "api_access" })).resolves.toMatchObject({ enabled: true });
  });
});
