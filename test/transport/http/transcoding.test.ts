import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFileRegistry, fromBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { methodCalls } from "../../../src/transport/method-calls.ts";
import { QuotaFailureSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { createTranscodingHandler } from "../../../src/transport/http/transcoding.ts";
import { createLogger } from "../../../src/platform/logger.ts";
import { Metrics } from "../../../src/platform/metrics.ts";
import { DEFAULT_MAX_MESSAGE_BYTES, routerOptions } from "../../../src/transport/routes.ts";

/**
 * The transcoding layer knows no RPC by name: a service that only the tests define, compiled by
 * buf at test time, is exposed under /v1 just by its google.api.http annotations.
 */
const root = path.resolve(import.meta.dirname, "../../..");
let directory: string;
let server: http.Server;
let baseUrl: string;
/** By request path: whether its answer was written in the event loop turn the request came in. */
const writtenAtOnce = new Map<string, boolean>();

async function compileEchoService(): Promise<DescService> {
  directory = await mkdtemp(path.join(tmpdir(), "transcoding-test-"));
  await cp(path.join(root, "proto/google"), path.join(directory, "google"), { recursive: true });
  await cp(path.join(root, "test/proto/transcodingtest"), path.join(directory, "transcodingtest"), { recursive: true });
  await writeFile(path.join(directory, "buf.yaml"), "version: v2\n");
  const image = path.join(directory, "image.binpb");
  await promisify(execFile)(path.join(root, "node_modules/.bin/buf"), ["build", directory, "-o", image]);
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, await readFile(image)));
  const service = registry.getService("transcodingtest.v1.EchoService");
  if (service === undefined) throw new Error("EchoService was not compiled");
  return service;
}

const FAILURE_DETAILS = {
  resource_exhausted: [{ desc: QuotaFailureSchema, value: { violations: [{ subject: "user:u", quotaMetric: "jobs" }] } }],
};

beforeAll(async () => {
  const service = await compileEchoService();
  const logger = createLogger("silent");
  const { interceptors } = routerOptions({ logger, metrics: new Metrics(), databaseDeadlines: (next) => next }, 1000);
  const implementation = {
    echo: (request: unknown) => ({ request }),
    fail: (request: { code: string }) => {
      const code = Object.entries(Code).find(([name]) => name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() === request.code)?.[1];
      const details = request.code === "resource_exhausted" ? FAILURE_DETAILS.resource_exhausted : [];
      throw new ConnectError(`failing with ${request.code}`, typeof code === "number" ? code : Code.Unknown, undefined, details);
    },
    putItem: (request: { id: string; item?: { title: string } }) => ({
      item: { title: `${request.id}:${request.item?.title ?? ""}` },
      etag: "hidden",
    }),
  };
  const handler = createTranscodingHandler({
    methods: methodCalls([{ service, implementation }], { interceptors, logger, metrics: new Metrics() }),
    publicMethods: [],
    maxBodyBytes: DEFAULT_MAX_MESSAGE_BYTES,
    logger,
  });
  server = http.createServer((request, response) => {
    // Whether the answer is written before the event loop's turn the request came in ends.
    let turnEnded = false;
    setImmediate(() => (turnEnded = true));
    const end = response.end.bind(response) as (...args: unknown[]) => http.ServerResponse;
    response.end = ((...args: unknown[]) => {
      writtenAtOnce.set(request.url ?? "", !turnEnded);
      return end(...args);
    }) as typeof response.end;
    handler(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(directory, { recursive: true, force: true });
});

describe("an annotated RPC", () => {
  it("binds the path, query parameters, repeated and dotted fields", async () => {
    const response = await fetch(`${baseUrl}/v1/echo/hello%20world?count=3&loud=true&tags=a&tags=b&inner.note=n`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      request: { name: "hello world", count: 3, loud: true, tags: ["a", "b"], inner: { note: "n" } },
    });
  });

  it("takes a JSON body on an additional binding with a verb", async () => {
    const response = await fetch(`${baseUrl}/v1/echo/bob:shout`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ count: 2, loud: true }),
    });
    expect(await response.json()).toEqual({ request: { name: "bob", count: 2, loud: true, tags: [] } });
  });

  it("fills the body field and answers with the response_body field", async () => {
    const response = await fetch(`${baseUrl}/v1/items/42`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ title: "towel" }),
    });
    expect(await response.json()).toEqual({ title: "42:towel" });
  });

  it("gives each of many concurrent calls its own answer, though answers are written together", async () => {
    const names = Array.from({ length: 40 }, (_, index) => `caller-${index}`);
    const answers = await Promise.all(names.map(async (name) => (await fetch(`${baseUrl}/v1/echo/${name}`)).json()));
    expect(answers.map((answer) => (answer as { request: { name: string } }).request.name)).toEqual(names);
  });

  it("writes a lone caller's answer at once, not at the end of the event loop's turn", async () => {
    // The first call may follow a batch of another test's answers; the second follows a lone one.
    for (const name of ["first", "second"]) await (await fetch(`${baseUrl}/v1/echo/${name}`)).json();
    expect(writtenAtOnce.get("/v1/echo/second")).toBe(true);
  });

  it("keeps serving when callers leave before their answers are written", async () => {
    const { port } = server.address() as AddressInfo;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const request = http.get({ host: "127.0.0.1", port, path: "/v1/echo/leaving" });
        request.on("error", () => {});
        await new Promise((resolve) => request.once("finish", resolve));
        request.destroy();
      }),
    );
    const response = await fetch(`${baseUrl}/v1/echo/staying`);
    expect(await response.json()).toMatchObject({ request: { name: "staying" } });
  });
});

describe("bad requests", () => {
  it.each([
    ["an unknown query parameter", "/v1/echo/x?colour=red", 400],
    ["a malformed number", "/v1/echo/x?count=three", 400],
    ["a malformed bool", "/v1/echo/x?loud=maybe", 400],
    ["a field the path already binds", "/v1/echo/x?name=y", 400],
    ["an unknown path", "/v1/nowhere", 404],
  ])("refuses %s, with a request id", async (_, url, status) => {
    const response = await fetch(`${baseUrl}${url}`);
    expect(response.status).toBe(status);
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(await response.json()).toMatchObject({ code: expect.any(String), message: expect.any(String), details: [] });
  });

  it("answers a wrong method with 405 and Allow, echoing the caller's request id", async () => {
    const response = await fetch(`${baseUrl}/v1/echo/x`, { method: "DELETE", headers: { "x-request-id": "trace-405" } });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
    expect(response.headers.get("x-request-id")).toBe("trace-405");
  });

  it("refuses bodies over 1 MiB with 413", async () => {
    const response = await fetch(`${baseUrl}/v1/echo/x:shout`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "x".repeat(DEFAULT_MAX_MESSAGE_BYTES) }),
    });
    expect(response.status).toBe(413);
  });

  it("refuses malformed JSON and non-JSON bodies", async () => {
    const malformed = await fetch(`${baseUrl}/v1/echo/x:shout`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    expect(malformed.status).toBe(400);
    const text = await fetch(`${baseUrl}/v1/echo/x:shout`, { method: "POST", headers: { "content-type": "text/plain" }, body: "hi" });
    expect(text.status).toBe(415);
    const wrongType = await fetch(`${baseUrl}/v1/echo/x:shout`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"count":"many"}' });
    expect(wrongType.status).toBe(400);
  });
});

describe("errors", () => {
  it.each([
    ["unauthenticated", 401],
    ["permission_denied", 403],
    ["not_found", 404],
    ["invalid_argument", 400],
    ["failed_precondition", 400],
    ["already_exists", 409],
    ["unavailable", 503],
    ["deadline_exceeded", 504],
    ["unimplemented", 501],
    ["internal", 500],
  ])("maps %s to HTTP %i with a JSON body", async (code, status) => {
    const response = await fetch(`${baseUrl}/v1/fail/${code}`);
    expect(response.status).toBe(status);
    expect(await response.json()).toEqual({ code, message: `failing with ${code}`, details: [] });
    expect(response.headers.get("www-authenticate")).toBe(status === 401 ? "Bearer" : null);
  });

  it("maps quota exhaustion to 402 with the QuotaFailure as JSON", async () => {
    const response = await fetch(`${baseUrl}/v1/fail/resource_exhausted`);
    expect(response.status).toBe(402);
    expect(await response.json()).toEqual({
      code: "resource_exhausted",
      message: "failing with resource_exhausted",
      details: [{ "@type": "type.googleapis.com/google.rpc.QuotaFailure", violations: [{ subject: "user:u", quotaMetric: "jobs" }] }],
    });
  });
});
