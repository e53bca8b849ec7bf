import { constants } from "node:buffer";
import { randomUUID } from "node:crypto";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, createContextKey, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { codeFromHttpStatus, codeToString, endStreamFlag, endStreamFromJson } from "@connectrpc/connect/protocol-connect";
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
import { authenticatedUserKey } from "../../auth/gates.ts";
import { MAX_USER_ID_LENGTH } from "../../domain/validation.ts";
import type { Logger } from "../../platform/logger.ts";
import type { Metrics } from "../../platform/metrics.ts";

/** The user a call is about, when its request names one (for the request log). */
export const requestUserKey = createContextKey<string | undefined>(undefined, { description: "user of the request" });

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's x-request-id (the header's value) when it is a sane one, else a new id. */
export function requestIdOf(given: string | null | undefined): string {
  return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Records what the request log and the metrics need from the messages: the user a request names,
 * and quota denials (IncrementUsage refused, CheckQuota not allowed) by metric.
 */
export function callAttributesInterceptor(metrics: Metrics): Interceptor {
  return (next) => async (request) => {
    const message = request.message as { userId?: unknown; metric?: unknown };
    if (typeof message.userId === "string" && message.userId !== "") {
      request.contextValues.set(requestUserKey, firstCharacters(message.userId, MAX_USER_ID_LENGTH));
    }
    const metric = typeof message.metric === "string" ? message.metric.slice(0, 64) : "";
    try {
      const response = await next(request);
      if (request.method.name === "CheckQuota" && (response.message as { allowed?: boolean }).allowed === false) {
        metrics.quotaDenials.inc({ metric, rpc: "CheckQuota" });
      }
      return response;
    } catch (error) {
      if (request.method.name === "IncrementUsage" && (error as { code?: Code }).code === Code.ResourceExhausted) {
        metrics.quotaDenials.inc({ metric, rpc: "IncrementUsage" });
      }
      throw error;
    }
  };
}

/** At most `count` characters (code points, as user ids are measured) of `value`, for the log. */
function firstCharacters(value: string, count: number): string {
  return value.length <= count ? value : Array.from(value).slice(0, count).join("");
}

/** connect-es reports an undecodable binary request as `internal`; it is the caller's error. */
const PARSE_FAILURE = /^parse (binary|JSON)\b/;
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

/** Rewrites a gRPC parse failure from `internal` to `invalid_argument`; returns the code name. */
function settleGrpcStatus(headers: Headers | undefined): string | undefined {
  const status = grpcStatus(headers);
  if (status === undefined) return undefined;
  if (status.code === Code.Internal && PARSE_FAILURE.test(status.message)) {
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

export type Observed = {
  readonly requestId: string;
  readonly code: string;
  readonly durationMs: number;
  readonly contextValues: ContextValues | undefined;
};

/**
 * Wraps an RPC handler of any protocol: gives the call a request id (x-request-id, accepted or
 * made, and returned), maps request parse failures to invalid_argument, and once the response
 * is complete (trailers included) reports its code and duration. Gate refusals are seen too.
 */
export function observeHandler(
  handler: UniversalHandler,
  report: (observed: Observed) => void,
  compressions: readonly Compression[],
): UniversalHandler {
  const observed = async (request: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const started = performance.now();
    const requestId = requestIdOf(request.header.get("x-request-id"));
    request.header.set("x-request-id", requestId);
    const finish = (code: string) =>
      report({ requestId, code, durationMs: performance.now() - started, contextValues: request.contextValues });
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
      if (code === "internal" && PARSE_FAILURE.test(error.message)) {
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

/** The report of each call of a method: one log line and the RPC metrics. */
export function reportCall(logger: Logger, metrics: Metrics, rpc: { readonly service: DescService; readonly method: DescMethod }) {
  const service = rpc.service.typeName;
  const method = rpc.method.name;
  // The call line holds ids, codes and numbers only: nothing to redact, so no redaction pass.
  const callLog = logger.child({}, { redact: { paths: [] } });
  return ({ requestId, code, durationMs, contextValues }: Observed) => {
    metrics.rpcRequests.inc({ service, method, code });
    metrics.rpcDuration.observe({ service, method, code }, durationMs / 1000);
    const user = contextValues?.get(authenticatedUserKey)?.userId ?? contextValues?.get(requestUserKey);
    callLog.info(
      { request_id: requestId, rpc: `${service}/${method}`, code, duration_ms: Math.round(durationMs * 100) / 100, user_id: user },
      "rpc",
    );
  };
}
