import { constants } from "node:buffer";
import { Code } from "@connectrpc/connect";
import { codeFromHttpStatus, codeToHttpStatus, codeToString, endStreamFlag, endStreamFromJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import {
  compressedFlag,
  createAsyncIterable,
  encodeEnvelope,
  pipe,
  readAllBytes,
  transformSplitEnvelope,
  type Compression,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { beginCall, requestDeadline, type CallReport } from "../call-lifecycle.ts";
import { InvalidArgumentError } from "../../domain/errors.ts";
import { entitlementErrorToConnect } from "../interceptors/error-mapping.ts";
import { decodeJsonText, percentDecodedBytes, queryParameters } from "../well-formed-text.ts";

/**
 * Requests whose bytes are not exactly one readable message, which connect-es answers with
 * `internal` (undecodable, or marked compressed with no encoding named) or `unimplemented` (no
 * message, or a second one, for a unary call): they are the caller's error, `invalid_argument`,
 * as on every transport (docs/errors.md).
 */
const UNREADABLE_REQUEST =
  /^(parse (binary|JSON)\b|protocol error: (missing input message|received extra input message)\b|received compressed envelope, but do not know how to decompress)/;

function isUnreadableRequest(code: number | string, message: string): boolean {
  const mislabelled = code === Code.Internal || code === Code.Unimplemented || code === "internal" || code === "unimplemented";
  return mislabelled && UNREADABLE_REQUEST.test(message);
}
/** An error body is the server's own, in memory already: read whole, whatever its size. */
const ANY_SIZE = constants.MAX_LENGTH;

function grpcStatus(headers: Headers | undefined): { code: number; message: string } | undefined {
  const status = headers?.get("grpc-status");
  if (status === null || status === undefined) return undefined;
  let message = "";
  try {
    message = decodeURIComponent(headers?.get("grpc-message") ?? "");
  } catch {
    // An undecodable message is left out.
  }
  return { code: Number(status), message };
}

/** Rewrites an unreadable request's gRPC status to `invalid_argument`; returns the code name. */
function settleGrpcStatus(headers: Headers | undefined): string | undefined {
  const status = grpcStatus(headers);
  if (status === undefined) return undefined;
  if (isUnreadableRequest(status.code, status.message)) {
    headers!.set("grpc-status", String(Code.InvalidArgument));
    return codeToString(Code.InvalidArgument);
  }
  return status.code === 0 ? "ok" : codeToString(status.code as Code);
}

/**
 * The code and message of a Connect error body, compressed (an error with details can pass the
 * compression floor) or not; when the body cannot be read, the code its HTTP status stands for.
 */
async function readConnectError(
  bytes: Uint8Array,
  compression: Compression | undefined,
  status: number,
): Promise<{ code: string; message: string }> {
  try {
    const json = compression === undefined ? bytes : await compression.decompress(bytes, ANY_SIZE);
    const error = JSON.parse(new TextDecoder().decode(json)) as { code?: unknown; message?: unknown };
    if (typeof error.code === "string") {
      return { code: error.code, message: typeof error.message === "string" ? error.message : "" };
    }
  } catch {
    // Falls back to the status below.
  }
  return { code: codeToString(codeFromHttpStatus(status)), message: "" };
}

/**
 * A streaming body passed on envelope by envelope. The envelope that ends it (gRPC-Web's
 * trailers, Connect's end-of-stream message; compressed when large) goes through `read`, which
 * returns the bytes sent in its place, uncompressed: the flag is per envelope.
 */
function readingEndEnvelope(
  body: AsyncIterable<Uint8Array>,
  endFlag: number,
  compression: Compression | undefined,
  read: (data: Uint8Array) => Uint8Array,
): AsyncIterable<Uint8Array> {
  return pipe(body, transformSplitEnvelope(ANY_SIZE), async function* (envelopes) {
    for await (const { flags, data } of envelopes) {
      const compressed = (flags & compressedFlag) === compressedFlag;
      if ((flags & endFlag) !== endFlag || (compressed && compression === undefined)) {
        yield encodeEnvelope(flags, data);
        continue;
      }
      yield encodeEnvelope(endFlag, read(compressed ? await compression!.decompress(data, ANY_SIZE) : data));
    }
  });
}

/**
 * Refuses a Connect GET request whose query is not well-formed UTF-8 (connect-es would decode it
 * to U+FFFD), naming the field of a JSON message it is in; undefined when the query is fine.
 */
function illFormedQuery(url: string): UniversalServerResponse | undefined {
  // Only escapes can hold ill-formed bytes (Node's parser admits only ASCII in a URL).
  if (!url.includes("%")) return undefined;
  const { search, searchParams } = new URL(url);
  try {
    // A JSON message first, to name the field in it.
    const message = search.slice(1).split("&").find((part) => part.startsWith("message="));
    if (message !== undefined && searchParams.get("encoding") === "json" && searchParams.get("base64") !== "1") {
      decodeJsonText(percentDecodedBytes(message.slice("message=".length), true));
    }
    queryParameters(search);
    return undefined;
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error;
    const connectError = entitlementErrorToConnect(error);
    return {
      status: codeToHttpStatus(connectError.code),
      header: new Headers({ "content-type": "application/json" }),
      body: createAsyncIterable([errorToJsonBytes(connectError, {})]),
    };
  }
}

/**
 * Wraps an RPC handler of any protocol in the call lifecycle (call-lifecycle.ts): the request id
 * (x-request-id, accepted or made, and returned), the deadline, and once the response is complete
 * (trailers included) the report of its code and duration. Request parse failures are mapped to
 * invalid_argument; gate refusals are seen too.
 */
export function observeHandler(handler: UniversalHandler, report: CallReport, compressions: readonly Compression[]): UniversalHandler {
  const observed = async (request: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const { requestId, end: finish } = beginCall(report, request.header.get("x-request-id"), request.contextValues, requestDeadline(request.header));
    request.header.set("x-request-id", requestId);
    const refusal = request.method === "GET" ? illFormedQuery(request.url) : undefined;
    if (refusal !== undefined) {
      refusal.header?.set("x-request-id", requestId);
      finish("invalid_argument");
      return refusal;
    }
    let response = await handler(request);
    response.header?.set("x-request-id", requestId);
    /** The compression a response header names, if it is one of ours. */
    const compressionIn = (header: string) => compressions.find((candidate) => candidate.name === response.header?.get(header));
    // Connect protocol, unary: the outcome is the HTTP status, an error a JSON body.
    if (response.status !== 200 && response.body !== undefined && /^application\/json/.test(response.header?.get("content-type") ?? "")) {
      const bytes = await readAllBytes(response.body, ANY_SIZE);
      const error = await readConnectError(bytes, compressionIn("content-encoding"), response.status);
      let body = bytes;
      let { status } = response;
      let { code } = error;
      if (isUnreadableRequest(code, error.message)) {
        code = "invalid_argument";
        status = 400;
        body = new TextEncoder().encode(JSON.stringify({ code, message: error.message }));
        response.header?.delete("content-length");
        response.header?.delete("content-encoding");
      }
      finish(code);
      return { ...response, status, body: createAsyncIterable([body]) };
    }
    // gRPC and gRPC-Web trailers-only responses carry the status in the headers.
    const headerCode = settleGrpcStatus(response.header);
    const { body, trailer } = response;
    if (body === undefined) {
      finish(headerCode ?? (response.status === 200 ? "ok" : "unknown"));
      return response;
    }
    // gRPC-Web and Connect streams end their body with the status.
    let bodyStatusCode: string | undefined;
    const contentType = response.header?.get("content-type") ?? "";
    let observedBody = body;
    if (/^application\/grpc-web/.test(contentType)) {
      observedBody = readingEndEnvelope(body, trailerFlag, compressionIn("grpc-encoding"), (data) => {
        const trailers = trailerParse(data);
        bodyStatusCode = settleGrpcStatus(trailers);
        return trailerSerialize(trailers);
      });
    } else if (/^application\/connect\+/.test(contentType)) {
      observedBody = readingEndEnvelope(body, endStreamFlag, compressionIn("connect-content-encoding"), (data) => {
        try {
          const { error } = endStreamFromJson(data);
          bodyStatusCode = error === undefined ? "ok" : codeToString(error.code);
        } catch {
          // An unreadable end of stream is the client's to judge; the log falls back to the status.
        }
        return data;
      });
    }
    response = {
      ...response,
      body: (async function* () {
        try {
          yield* observedBody;
        } catch (error) {
          finish("canceled");
          throw error;
        }
        finish(headerCode ?? bodyStatusCode ?? settleGrpcStatus(trailer) ?? (response.status === 200 ? "ok" : "unknown"));
      })(),
    };
    return response;
  };
  // Keeps what describes the handler (method, service, path), for the /v1 layer.
  return Object.assign(observed, { ...handler });
}
