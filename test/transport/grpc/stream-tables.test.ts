import type http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { EntitlementService } from "../../../gen/entitlements/v1/entitlement_service_pb.js";
import { installStreamTables, StreamTable } from "../../../src/transport/grpc/stream-tables.ts";
import { GrpcTestClient } from "../../support/grpc-client.ts";
import { bindGrpcServer } from "../../support/grpc-server.ts";

describe("StreamTable", () => {
  it("answers get, set, delete and size as the Map it stands in for", () => {
    const table = new StreamTable<string>();
    expect(table.set(1, "a").set(3, "b").set(3, "c")).toBe(table);
    expect([table.size, table.get(1), table.get(3), table.get(5)]).toEqual([2, "a", "c", undefined]);
    expect([table.delete(1), table.delete(1), table.delete(7)]).toEqual([true, false, false]);
    expect([table.size, table.get(1)]).toEqual([1, undefined]);
  });

  it("visits each stream once, in id order, when each visit deletes it (as a session's destroy does)", () => {
    const table = new StreamTable<string>();
    for (const id of [5, 1, 3]) table.set(id, `s${id}`);
    const visited: [string, number][] = [];
    table.forEach((stream, id) => {
      visited.push([stream, id]);
      table.delete(id);
    });
    expect(visited).toEqual([["s1", 1], ["s3", 3], ["s5", 5]]);
    expect(table.size).toBe(0);
  });
});

/** Node's private per-session state, found as the code under test does not: by looking at it. */
function streamsOf(session: http2.ServerHttp2Session): unknown {
  const record = session as unknown as Record<symbol, { streams?: unknown }>;
  return Object.getOwnPropertySymbols(session).map((symbol) => record[symbol]?.streams).find((streams) => streams !== undefined);
}

describe("installStreamTables", () => {
  let server: grpc.Server;
  let port: number;
  let http2Server: http2.Http2Server;
  const sessions: http2.ServerHttp2Session[] = [];
  const serverStreams: http2.ServerHttp2Stream[] = [];

  beforeAll(async () => {
    const implementation = {
      hasFeature: () => ({ enabled: true, planCode: "free" }),
      // A watch that stays open until its stream is torn down.
      watchEntitlements: async function* (_request: unknown, context: { signal: AbortSignal }) {
        await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
        yield* [];
      },
    };
    ({ server, port } = await bindGrpcServer(implementation));
    installStreamTables(server);
    // The same grpc-js internal the installation reads: the test watches the sessions it serves.
    http2Server = [...(server as unknown as { http2Servers: Map<http2.Http2Server, unknown> }).http2Servers.keys()][0]!;
    http2Server.on("session", (session) => sessions.push(session));
    http2Server.on("stream", (stream) => serverStreams.push(stream));
  });

  afterAll(() => server.forceShutdown());

  it("keeps a session's streams in a StreamTable, and serves", async () => {
    const client = new GrpcTestClient(EntitlementService, `127.0.0.1:${port}`);
    try {
      await expect(client.call(EntitlementService.method.hasFeature, { userId: "u", feature: "api_access" })).resolves.toMatchObject({ enabled: true });
      expect(sessions.length).toBeGreaterThan(0);
      const streams = streamsOf(sessions.at(-1)!);
      expect(streams).toBeInstanceOf(StreamTable);
      expect((streams as StreamTable<unknown>).size).toBe(0);
    } finally {
      client.close();
    }
  });

  it("ends the open streams of a session destroyed under them", async () => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const method = EntitlementService.method.watchEntitlements;
    const watch = client.makeServerStreamRequest(
      `/${EntitlementService.typeName}/${method.name}`,
      (value: object) => Buffer.from(toBinary(method.input, create(method.input, value))),
      (bytes: Buffer) => bytes,
      { userIds: ["u"] },
    );
    const ended = new Promise<grpc.ServiceError>((resolve) => watch.on("error", resolve));
    const opened = serverStreams.length;
    while (serverStreams.length === opened) await new Promise((resolve) => setTimeout(resolve, 5));
    const stream = serverStreams.at(-1)!;
    expect((streamsOf(stream.session as http2.ServerHttp2Session) as StreamTable<unknown>).get(stream.id!)).toBe(stream);
    stream.session!.destroy();
    await expect(ended).resolves.toMatchObject({ code: expect.any(Number) });
    expect(stream.destroyed).toBe(true);
    client.close();
  });

  it("attaches once however often it is called", () => {
    const before = http2Server.listenerCount("session");
    installStreamTables(server);
    expect(http2Server.listenerCount("session")).toBe(before);
  });
});
