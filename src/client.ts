import type { Interceptor } from "@connectrpc/connect";
import { ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { EntitlementService } from "../gen/entitlements/v1/entitlement_service_pb.js";
import { QuotaFailureSchema, type QuotaFailure } from "../gen/google/rpc/error_details_pb.js";

export * from "../gen/entitlements/v1/entitlement_service_pb.js";
export * from "../gen/entitlements/v1/account_pb.js";
export * from "../gen/entitlements/v1/plan_pb.js";
export * from "../gen/entitlements/v1/subscription_pb.js";
export * from "../gen/entitlements/v1/usage_pb.js";

export type EntitlementClientOptions = {
  /** The service's address: `http://host:50051` for gRPC, `http://host:8080` for Connect. */
  readonly baseUrl: string;
  /** A service token (one of the server's SERVICE_TOKENS). */
  readonly token: string;
  /** "grpc" (HTTP/2, the default) or "connect" (HTTP/1.1, also through plain HTTP proxies). */
  readonly protocol?: "grpc" | "connect";
  /** Deadline of each call unless the call sets its own; the default is 2 s. */
  readonly timeoutMs?: number;
  /** TLS settings (`ca`, `cert`, `key` for mutual TLS) for an https baseUrl. */
  readonly tls?: { readonly ca?: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer };
};

export type EntitlementClient = Client<typeof EntitlementService>;

/**
 * A typed EntitlementService client for Node.js backends:
 *
 *   const entitlements = createEntitlementClient({ baseUrl: "http://127.0.0.1:50051", token });
 *   const { allowed } = await entitlements.checkQuota({ userId, metric: "jobs", amount: 1n });
 */
export function createEntitlementClient(options: EntitlementClientOptions): EntitlementClient {
  const authorization: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${options.token}`);
    return next(request);
  };
  const common = {
    baseUrl: options.baseUrl,
    interceptors: [authorization],
    defaultTimeoutMs: options.timeoutMs ?? 2000,
    ...(options.tls === undefined ? {} : { nodeOptions: { ...options.tls } }),
  };
  const transport =
    options.protocol === "connect"
      ? createConnectTransport({ ...common, httpVersion: "1.1" })
      : createGrpcTransport(common);
  return createClient(EntitlementService, transport);
}

/** The quota details of a refused IncrementUsage (RESOURCE_EXHAUSTED), or undefined. */
export function quotaFailureOf(error: unknown): QuotaFailure | undefined {
  return error instanceof ConnectError ? error.findDetails(QuotaFailureSchema)[0] : undefined;
}
