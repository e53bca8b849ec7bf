import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { DescMethod } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";
import type { HealthMonitor } from "../app/health-monitor.ts";
import { peerAddressKey } from "../auth/gates.ts";
import { withCors } from "./cors.ts";
import { hostInAddress } from "../platform/addresses.ts";
import { createNodeHandler } from "./connect/node-handler.ts";
import { createGrpcServer, grpcCredentials } from "./grpc/grpc-server.ts";
import { installStreamTables } from "./grpc/stream-tables.ts";
import { withOperationsEndpoints } from "./http/operations.ts";
import { createTranscodingHandler } from "./http/transcoding.ts";
import { methodCalls } from "./method-calls.ts";
import type { NodeRequest } from "./node-http.ts";
import { DEFAULT_MAX_MESSAGE_BYTES, routerOptions, routes, type InterceptorDependencies, type ServiceRegistration } from "./routes.ts";
import { answerClientError, MAX_REQUEST_HEADER_BYTES } from "./request-headers.ts";
import { tlsOptions, type TlsMaterial } from "./tls.ts";

/** What the listeners serve. */
export type ServedCalls = InterceptorDependencies & {
  readonly registrations: readonly ServiceRegistration[];
  /** RPCs that need no credential: their /v1 GET answers may be cached publicly. */
  readonly publicMethods: readonly DescMethod[];
  /** Answers the operations endpoints (/healthz, /readyz). */
  readonly health: HealthMonitor;
};

export type ListenOptions = {
  readonly host: string;
  readonly tls?: TlsMaterial | undefined;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly maxInFlight: number;
  readonly maxMessageBytes?: number;
  readonly shutdownTimeoutMs: number;
  /** Browser origins the HTTP port answers with CORS (`*`: any); none or absent: no CORS. */
  readonly corsOrigins?: readonly string[];
};

export type Listener = {
  readonly grpcPort: number;
  readonly httpPort: number;
  close(): Promise<void>;
};

/** A port the service could not listen on, named by the setting that chose it. */
export class ListenError extends Error {
  override name = "ListenError";
  constructor(setting: string, host: string, port: number, cause: unknown) {
    const reason = String((cause as Error | undefined)?.message ?? cause);
    const why = /EADDRINUSE/.test(reason)
      ? "the address is in use: another process listens there"
      : /EACCES/.test(reason)
        ? "permission denied: ports below 1024 need privileges"
        : reason;
    super(`cannot listen on ${hostInAddress(host)}:${port} (${setting}): ${why}. Set ${setting} to a free port (0: any).`, { cause });
  }
}

function listen(server: http.Server | https.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Stops accepting connections, lets in-flight requests finish (idle keep-alive connections are
 * closed at once), and after `timeoutMs` closes what is left.
 */
function closeGracefully(server: http.Server | https.Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Serves the calls on two ports: native gRPC (HTTP/2, through @grpc/grpc-js) on the gRPC port,
 * and Connect, gRPC-Web and the /v1 JSON endpoints (HTTP/1.1, through connect-node) on the HTTP
 * port. Both run the same registrations, gates and interceptors.
 */
export async function listenAll(served: ServedCalls, options: ListenOptions): Promise<Listener> {
  const contextValues = (request: NodeRequest) => createContextValues().set(peerAddressKey, request.socket.remoteAddress);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const rpcOptions = routerOptions(served, options.maxInFlight, maxMessageBytes);
  // One set of implementations for every protocol: connect-node routes them, and the grpc-js
  // server and the /v1 layer run their methods themselves (method-calls.ts).
  const { registrations, logger, metrics } = served;
  const methods = methodCalls(registrations, { interceptors: rpcOptions.interceptors, logger, metrics });
  const handler = createNodeHandler({
    routes: routes(registrations),
    routerOptions: rpcOptions,
    contextValues,
    // Requests for paths that are not RPCs: the operations endpoints and the /v1 JSON layer.
    fallback: withOperationsEndpoints(
      { health: served.health, metrics },
      createTranscodingHandler({ methods, publicMethods: served.publicMethods, maxBodyBytes: maxMessageBytes, logger }),
    ),
    logger,
    metrics,
  });
  const serverOptions = { maxHeaderSize: MAX_REQUEST_HEADER_BYTES };
  const withBrowsers = withCors(options.corsOrigins ?? [], handler);
  const httpServer =
    options.tls === undefined ? http.createServer(serverOptions, withBrowsers) : https.createServer({ ...serverOptions, ...tlsOptions(options.tls) }, withBrowsers);
  httpServer.on("clientError", answerClientError);
  const grpcServer = createGrpcServer({ methods, maxMessageBytes, logger });
  const { shutdownTimeoutMs } = options;
  const closeGrpc = () =>
    new Promise<void>((resolve) => {
      const force = setTimeout(() => grpcServer.forceShutdown(), shutdownTimeoutMs).unref();
      grpcServer.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  const close = () => Promise.all([closeGrpc(), closeGracefully(httpServer, shutdownTimeoutMs)]).then(() => undefined);
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${hostInAddress(options.host)}:${options.grpcPort}`, grpcCredentials(options.tls), (error, port) =>
      error ? reject(new ListenError("GRPC_PORT", options.host, options.grpcPort, error)) : resolve(port),
    ),
  );
  installStreamTables(grpcServer);
  const httpPort = await listen(httpServer, options.httpPort, options.host).catch(async (error: unknown) => {
    await close();
    throw new ListenError("HTTP_PORT", options.host, options.httpPort, error);
  });
  return { grpcPort, httpPort, close };
}
