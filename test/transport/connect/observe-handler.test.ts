import { describe, expect, it } from "vitest";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { compressionGzip } from "@connectrpc/connect-node";
import {
  compressedFlag,
  createAsyncIterable,
  encodeEnvelope,
  readAllBytes,
  type UniversalHandler,
  type UniversalServerRequest,
} from "@connectrpc/connect/protocol";
import { createEndStreamSerialization, endStreamFlag } from "@connectrpc/connect/protocol-connect";
import type { CallOutcome } from "../../../src/transport/call-lifecycle.ts";
import { observeHandler } from "../../../src/transport/connect/observe-handler.ts";

/** The observer reads the status of every protocol's response and passes the response on unchanged. */
const endStream = createEndStreamSerialization({});
const message = new TextEncoder().encode("a message");

function request(): UniversalServerRequest {
  return {
    httpVersion: "1.1",
    method: "POST",
    url: "http://localhost/grpc.health.v1.Health/Watch",
    header: new Headers(),
    body: createAsyncIterable([]),
    signal: new AbortController().signal,
    contextValues: createContextValues(),
  };
}

/** Runs a handler that answers `envelopes` as a Connect stream; the bytes sent and the code reported. */
async function connectStream(envelopes: Uint8Array[], header: Record<string, string> = {}) {
  const reported: CallOutcome[] = [];
  const handler = (async () => ({
    status: 200,
    header: new Headers({ "content-type": "application/connect+proto", ...header }),
    body: createAsyncIterable(envelopes),
  })) as unknown as UniversalHandler;
  const response = await observeHandler(handler, (observed) => reported.push(observed), [compressionGzip])(request());
  const sent = await readAllBytes(response.body!, Number.MAX_SAFE_INTEGER);
  return { sent, codes: reported.map((observed) => observed.code) };
}

const joined = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

describe("observeHandler, Connect streams", () => {
  it("reports the error of the end-of-stream message, and sends the stream as it was", async () => {
    const envelopes = [
      encodeEnvelope(0, message),
      encodeEnvelope(endStreamFlag, endStream.serialize({ metadata: new Headers(), error: new ConnectError("gone", Code.NotFound) })),
    ];
    const { sent, codes } = await connectStream(envelopes);
    expect(codes).toEqual(["not_found"]);
    expect(sent).toEqual(joined(envelopes));
  });

  it("reports ok for a stream that ends without an error", async () => {
    const { codes } = await connectStream([encodeEnvelope(0, message), encodeEnvelope(endStreamFlag, endStream.serialize({ metadata: new Headers() }))]);
    expect(codes).toEqual(["ok"]);
  });

  it("reads a compressed end-of-stream message, and sends it uncompressed", async () => {
    const end = endStream.serialize({ metadata: new Headers(), error: new ConnectError("slow", Code.DeadlineExceeded) });
    const { sent, codes } = await connectStream(
      [encodeEnvelope(endStreamFlag | compressedFlag, await compressionGzip.compress(end))],
      { "connect-content-encoding": "gzip" },
    );
    expect(codes).toEqual(["deadline_exceeded"]);
    expect(sent).toEqual(encodeEnvelope(endStreamFlag, end));
  });
});
