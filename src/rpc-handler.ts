import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import {
  createAsyncIterable,
  readAllBytes,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import type { NodeRequest, NodeResponse } from "./http/transcoding.ts";
import type { Logger } from "./logger.ts";

/** connect-es reports an undecodable binary request as `internal`; it is the caller's error. */
const PARSE_FAILURE = /^parse (binary|JSON)\b/;
const MAX_ERROR_BODY_BYTES = 64 * 1024;

function grpcMessage(headers: Headers): string {
  try {
    return decodeURIComponent(headers.get("grpc-message") ?? "");
  } catch {
    return "";
  }
}

function fixGrpcStatus(headers: Headers | undefined): void {
  if (headers?.get("grpc-status") === String(Code.Internal) && PARSE_FAILURE.test(grpcMessage(headers))) {
    headers.set("grpc-status", String(Code.InvalidArgument));
  }
}

/** Rewrites a parse failure of the request from `internal` to `invalid_argument`. */
function withParseFailuresAsInvalidArgument(handler: UniversalHandler) {
  return async (request: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const response = await handler(request);
    // Connect protocol: a unary error is a JSON body with the HTTP status of its code.
    if (response.status === 500 && response.body !== undefined && /^application\/json/.test(response.header?.get("content-type") ?? "")) {
      const bytes = await readAllBytes(response.body, MAX_ERROR_BODY_BYTES);
      const error = JSON.parse(new TextDecoder().decode(bytes)) as { code?: string; message?: string };
      if (error.code === "internal" && PARSE_FAILURE.test(error.message ?? "")) {
        response.header?.delete("content-length");
        return {
          ...response,
          status: 400,
          body: createAsyncIterable([new TextEncoder().encode(JSON.stringify({ code: "invalid_argument", message: error.message }))]),
        };
      }
      return { ...response, body: createAsyncIterable([bytes]) };
    }
    // gRPC: the status is in the headers (trailers-only) or in the trailers after the body.
    fixGrpcStatus(response.header);
    const { body, trailer } = response;
    if (body === undefined || trailer === undefined) return response;
    return {
      ...response,
      body: (async function* () {
        yield* body;
        fixGrpcStatus(trailer);
      })(),
    };
  };
}

export type NodeHandlerOptions = {
  readonly routes: (router: ConnectRouter) => void;
  readonly routerOptions: ConnectRouterOptions;
  readonly contextValues: (request: NodeRequest) => ContextValues;
  /** Serves every request that is not an RPC; gets the router's handlers. */
  readonly fallback: (handlers: readonly UniversalHandler[]) => (request: NodeRequest, response: NodeResponse) => void;
  readonly logger: Logger;
};

/**
 * The Node.js request handler for every protocol: the RPC paths of the router (gRPC, gRPC-Web,
 * Connect), and the fallback (the /v1 JSON endpoints) for every other path. Like
 * connect-node's adapter, plus the mapping of request parse failures to invalid_argument.
 */
export function createNodeHandler(options: NodeHandlerOptions) {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options.routerOptions });
  options.routes(router);
  const paths = new Map(router.handlers.map((handler) => [handler.requestPath, { handler, serve: withParseFailuresAsInvalidArgument(handler) }]));
  const fallback = options.fallback(router.handlers);
  return (request: NodeRequest, response: NodeResponse): void => {
    const rpc = paths.get(request.url?.split("?", 2)[0] ?? "");
    if (rpc === undefined) {
      fallback(request, response);
      return;
    }
    rpc
      .serve(universalRequestFromNodeRequest(request, response, undefined, options.contextValues(request)))
      .then((universalResponse) => universalResponseToNodeResponse(universalResponse, response))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error({ err: reason, rpc: rpc.handler.method.name }, "handler failed");
      });
  };
}
