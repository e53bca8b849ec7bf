import net from "node:net";
import { sql } from "slonik";
import { describe, expect, it } from "vitest";
import { http1Request, http2Post, type RawAnswer } from "../support/raw-requests.ts";
import { startTestServer } from "../support/server.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/**
 * The same malformed bytes get the same documented answer, invalid_argument, on every transport
 * (docs/errors.md): never OK, never internal, never unimplemented for a method that exists.
 */
const server = await startTestServer();
const { grpcPort, httpPort } = server.listener;
const authorization = `Bearer ${SERVICE_TOKEN}`;
const GET_PLAN = "/entitlements.v1.EntitlementService/GetPlan";
const INCREMENT_USAGE = "/entitlements.v1.EntitlementService/IncrementUsage";
const bytes = (latin1: string) => Buffer.from(latin1, "latin1");

/** gRPC framings of GetPlan's request that do not hold exactly one readable message. */
const malformedFrames: Record<string, Buffer> = {
  "a length prefix (32) longer than the message (5)": bytes("\x00\x00\x00\x00\x20\x0a\x03abc"),
  "a frame header cut to 3 bytes": bytes("\x00\x00\x00"),
  "an empty body": Buffer.alloc(0),
  "the compressed flag with no grpc-encoding": bytes("\x01\x00\x00\x00\x05\x0a\x03abc"),
  "bytes that are no protobuf message": bytes("\x00\x00\x00\x00\x03\xff\xff\xff"),
  "ill-formed UTF-8 in user_id": bytes("\x00\x00\x00\x00\x04\x0a\x02u\xff"),
  "two messages for a unary method": bytes("\x00\x00\x00\x00\x05\x0a\x03abc\x00\x00\x00\x00\x05\x0a\x03abc"),
};

const framedTransports: Record<string, (body: Buffer) => Promise<RawAnswer>> = {
  "gRPC (grpc-js, gRPC port)": (body) => http2Post(grpcPort, GET_PLAN, { "content-type": "application/grpc", authorization }, body),
  "gRPC (connect-node, HTTP port)": (body) => http1Request(httpPort, "POST", GET_PLAN, { "content-type": "application/grpc", authorization }, body),
  "gRPC-Web (connect-node, HTTP port)": (body) => http1Request(httpPort, "POST", GET_PLAN, { "content-type": "application/grpc-web+proto", authorization }, body),
};

describe.each(Object.entries(framedTransports))("%s", (_transport, send) => {
  it.each(Object.entries(malformedFrames))("answers %s with invalid_argument", async (_case, body) => {
    const answer = await send(body);
    expect(answer.status).toBe(200);
    expect({ grpcStatus: answer.grpcStatus }).toEqual({ grpcStatus: "3" });
    expect(answer.grpcMessage).not.toMatch(/server streaming/);
  });

  it("still answers a well-formed request", async () => {
    const answer = await send(bytes("\x00\x00\x00\x00\x05\x0a\x03abc"));
    expect(answer.grpcStatus).toBe("0");
  });
});

describe("a server-streaming method on the gRPC port (grpc-js)", () => {
  const WATCH = "/entitlements.v1.EntitlementService/WatchEntitlements";
  const watchRequest = bytes("\x00\x00\x00\x00\x03\x0a\x01u");
  it.each([
    ["an empty body", Buffer.alloc(0), /request ended before a complete message/],
    ["two messages", Buffer.concat([watchRequest, watchRequest]), /request has more than one message/],
  ])("answers %s with invalid_argument", async (_case, body, message) => {
    const answer = await http2Post(grpcPort, WATCH, { "content-type": "application/grpc", authorization }, body);
    expect({ grpcStatus: answer.grpcStatus }).toEqual({ grpcStatus: "3" });
    expect(answer.grpcMessage).toMatch(message);
  });
});

/** A Connect unary request (`application/proto` or `application/json`) and its JSON error. */
async function connectUnary(path: string, contentType: string, body: Buffer) {
  const answer = await http1Request(httpPort, "POST", path, { "content-type": contentType, authorization }, body);
  return { status: answer.status, json: JSON.parse(answer.body.toString("utf8")) as { code?: string; message?: string; details?: unknown[] } };
}

describe("Connect (HTTP port)", () => {
  it.each([
    ["bytes that are no protobuf message", bytes("\xff\xff\xff")],
    ["ill-formed UTF-8 in user_id", bytes("\x0a\x02u\xff")],
  ])("answers %s as application/proto with invalid_argument", async (_case, body) => {
    expect(await connectUnary(GET_PLAN, "application/proto", body)).toMatchObject({ status: 400, json: { code: "invalid_argument" } });
  });
});

async function countersOf(userId: string): Promise<number> {
  return Number(await server.pool.oneFirst(sql.unsafe`select count(*) from usage_counters where user_id = ${userId}`));
}

describe("ill-formed UTF-8 never merges distinct ids", () => {
  it("refuses it in a Connect JSON body, naming the field, before anything is counted", async () => {
    for (const id of ["u-\xff", "u-\xfe"]) {
      const body = bytes(`{"userId":"${id}","metric":"jobs","amount":"1","idempotencyKey":"k-${id.charCodeAt(2)}"}`);
      const answer = await connectUnary(INCREMENT_USAGE, "application/json", body);
      expect(answer).toMatchObject({ status: 400, json: { code: "invalid_argument", message: "userId: is not well-formed UTF-8" } });
      expect(JSON.stringify(answer.json.details)).toContain("google.rpc.BadRequest");
    }
    expect(await countersOf("u-\uFFFD")).toBe(0);
  });

  it("names a nested field, and accepts a well-formed U+FFFD", async () => {
    const nested = await connectUnary(INCREMENT_USAGE, "application/json", bytes(`{"userId":"ok","metric":"jobs\xc0","amount":"1"}`));
    expect(nested.json.message).toBe("metric: is not well-formed UTF-8");
    const wellFormed = await connectUnary(INCREMENT_USAGE, "application/json", Buffer.from(`{"userId":"u-\uFFFD","metric":"jobs","amount":"1"}`, "utf8"));
    expect(wellFormed.status).toBe(200);
    expect(await countersOf("u-\uFFFD")).toBe(1);
  });

  it("refuses it in a Connect GET request's JSON message", async () => {
    const message = `%7B%22userId%22%3A%22u-%FF%22%7D`;
    const answer = await http1Request(httpPort, "GET", `${GET_PLAN}?connect=v1&encoding=json&message=${message}`, { authorization });
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body.toString("utf8"))).toMatchObject({ code: "invalid_argument", message: "userId: is not well-formed UTF-8" });
  });

  it.each([
    ["a /v1 path", "GET", "/v1/admin/accounts/u-%FF", undefined, "user_id"],
    ["a /v1 query", "GET", "/v1/admin/accounts?query=a%C0%80", undefined, "query"],
    ["a /v1 JSON body", "POST", "/v1/admin/accounts/u-1:suspend", bytes('{"reason":"r\xff"}'), "reason"],
  ])("refuses it in %s, naming the field", async (_case, method, path, body, field) => {
    const headers: Record<string, string> = body === undefined ? {} : { "content-type": "application/json" };
    const answer = await http1Request(httpPort, method, path, headers, body);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body.toString("utf8"))).toMatchObject({ code: "invalid_argument", message: `${field}: is not well-formed UTF-8` });
  });

  it("refuses raw bytes above ASCII in a request line", async () => {
    const status = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(httpPort, "127.0.0.1", () => socket.end(bytes("GET /v1/admin/accounts/u-\xff HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")));
      let text = "";
      socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
      socket.on("end", () => resolve(text.split("\r\n")[0] ?? ""));
      socket.on("error", reject);
    });
    expect(status).toMatch(/^HTTP\/1\.1 400 /);
  });
});
