import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { NodeRequest, NodeResponse } from "../node-http.ts";
import type { Logger } from "../../platform/logger.ts";
import type { Metrics } from "../../platform/metrics.ts";
import { reportCall } from "../call-lifecycle.ts";
import { observeHandler } from "./observe-handler.ts";

export type NodeHandlerOptions = {
  readonly routes: (router: ConnectRouter) => void;
  readonly routerOptions: ConnectRouterOptions;
  readonly contextValues: (request: NodeRequest) => ContextValues;
  /** Serves every request that is not an RPC. */
  readonly fallback: (request: NodeRequest, response: NodeResponse) => void;
  readonly logger: Logger;
  readonly metrics: Metrics;
};

/**
 * The Node.js request handler for every protocol: the RPC paths of the router (gRPC, gRPC-Web,
 * Connect), and the fallback (the /v1 JSON endpoints) for every other path. Like
 * connect-node's adapter, plus request ids, the request log and RPC metrics for every call, and
 * request parse failures mapped to invalid_argument (observe-handler.ts).
 */
export function createNodeHandler(options: NodeHandlerOptions) {
  const compressions = [compressionGzip, compressionBrotli];
  const router = createConnectRouter({ acceptCompression: compressions, ...options.routerOptions });
  options.routes(router);
  const handlers = router.handlers.map((handler) => observeHandler(handler, reportCall(options.logger, options.metrics, handler), compressions));
  const paths = new Map(handlers.map((handler) => [handler.requestPath, handler]));
  const { fallback } = options;
  return (request: NodeRequest, response: NodeResponse): void => {
    const handler = paths.get(request.url?.split("?", 2)[0] ?? "");
    if (handler === undefined) {
      fallback(request, response);
      return;
    }
    handler(universalRequestFromNodeRequest(request, response, undefined, options.contextValues(request)))
      .then((universalResponse) => universalResponseToNodeResponse(universalResponse, response))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error({ err: reason, rpc: handler.method.name }, "handler failed");
        // The caller must not wait for an answer that will never come.
        if (response.headersSent) {
          response.destroy();
        } else {
          response.statusCode = 500;
          response.setHeader("content-type", "application/json");
          response.end(JSON.stringify({ code: "internal", message: "internal error" }));
        }
      });
  };
}
