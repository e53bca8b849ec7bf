import type { DescMethod, Message } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "../../platform/logger.ts";
import { requestIdOf } from "../call-lifecycle.ts";
import { toConnectError } from "../interceptors/error-mapping.ts";
import type { MethodCalls } from "../method-calls.ts";
import type { NodeRequest, NodeResponse } from "../node-http.ts";
import { transcodingRoutes, type TranscodingRoute } from "./bindings.ts";
import { EntitlementError } from "../../domain/errors.ts";
import { detailsJson, HttpError, httpStatusOf } from "./http-errors.ts";
import { callHeader, requestJson, requestMessage } from "./request-binding.ts";
import { etagOf, responseBody, send, sendError } from "./response-writer.ts";

export type TranscodingOptions = {
  /** The methods: a transcoded call runs its method's gate, interceptors and implementation. */
  readonly methods: readonly MethodCalls[];
  /** RPCs that need no credential: their GET responses may be cached publicly. */
  readonly publicMethods: readonly DescMethod[];
  readonly maxBodyBytes: number;
  readonly logger: Logger;
};

const PUBLIC_MAX_AGE_SECONDS = 60;

/** An RPC error as /v1 answers it: its HTTP status, `{code, message, details}`. */
function sendCallError(response: NodeResponse, error: ConnectError): void {
  sendError(response, new HttpError(httpStatusOf(error), codeToString(error.code), error.rawMessage), detailsJson(error));
}

/**
 * The /v1 HTTP/JSON layer: routes built from the google.api.http annotations of every registered
 * RPC. A request becomes a call of the RPC's method with the gate, interceptors, request ids, log
 * line and metrics of every other protocol (method-calls.ts), without a detour through another
 * protocol's encoding; responses are proto3 canonical JSON, errors `{code, message, details}`
 * with the standard HTTP status. Unknown paths are 404, a wrong method 405 with `Allow`, bodies
 * over the limit 413.
 */
export function createTranscodingHandler(options: TranscodingOptions) {
  const routes = transcodingRoutes(options.methods);
  const publicMethods = new Set(options.publicMethods);

  async function handle(request: NodeRequest, response: NodeResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://localhost");
    const matching: { route: TranscodingRoute; values: ReadonlyMap<string, string> }[] = [];
    for (const route of routes) {
      const values = route.path.match(url.pathname);
      if (values !== undefined) matching.push({ route, values });
    }
    if (matching.length === 0) {
      throw new HttpError(404, "not_found", `no route for ${url.pathname}`);
    }
    const method = request.method === "HEAD" ? "GET" : (request.method ?? "GET");
    const found = matching.find(({ route }) => route.httpMethod === method);
    if (found === undefined) {
      const allowed = new Set(matching.map(({ route }) => route.httpMethod));
      if (allowed.has("GET")) allowed.add("HEAD");
      throw new HttpError(405, "unimplemented", `${request.method} is not allowed on ${url.pathname}`, { allow: [...allowed].join(", ") });
    }
    const { route, values } = found;
    if (Number(request.headers["content-length"] ?? "0") > options.maxBodyBytes) {
      throw new HttpError(413, "resource_exhausted", `the body is over ${options.maxBodyBytes} bytes`);
    }
    const json = await requestJson(route, request, url, values, options.maxBodyBytes);
    const { calls } = route;
    const call = calls.start({ protocolName: "http", header: callHeader(request), peerAddress: request.socket.remoteAddress, deadlineAt: undefined });
    response.once("close", call.cancel);
    response.setHeader("x-request-id", call.requestId);
    let output: Message;
    let body: string;
    try {
      // Encoding the response is part of the call: a response that cannot be encoded is answered
      // (internal) and logged like any other failed call.
      output = await calls.unary(call, () => requestMessage(calls.method.input, json));
      body = responseBody(route, output);
    } catch (error) {
      const connectError = toConnectError(error, options.logger);
      sendCallError(response, connectError);
      call.finish(connectError);
      return;
    }
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (method === "GET" && publicMethods.has(calls.method)) {
      const etag = etagOf(route, output, body);
      headers.etag = etag;
      headers["cache-control"] = `public, max-age=${PUBLIC_MAX_AGE_SECONDS}`;
      const ifNoneMatch = request.headers["if-none-match"];
      if (typeof ifNoneMatch === "string" && ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag)) {
        send(response, 304, headers, undefined);
        call.finish();
        return;
      }
    } else {
      headers["cache-control"] = "private, no-store";
    }
    send(response, 200, headers, request.method === "HEAD" ? undefined : body);
    call.finish();
  }

  return (request: NodeRequest, response: NodeResponse): void => {
    handle(request, response).catch((error: unknown) => {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      // Refused before any call began (no route, wrong method, a body out of bounds): the answer
      // still carries a request id, as every answer does.
      if (!response.hasHeader("x-request-id")) {
        const given = request.headers["x-request-id"];
        response.setHeader("x-request-id", requestIdOf(typeof given === "string" ? given : undefined));
      }
      if (error instanceof HttpError) {
        sendError(response, error);
        return;
      }
      if (error instanceof EntitlementError) {
        // Refused while reading the request (ill-formed UTF-8), before any call began.
        sendCallError(response, toConnectError(error, options.logger));
        return;
      }
      options.logger.error({ err: error, url: request.url }, "transcoding failed");
      sendError(response, new HttpError(500, "internal", "internal error"));
    });
  };
}
