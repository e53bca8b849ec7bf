import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { EntitlementService } from "./gen/entitlements/v1/entitlement_service_pb.js";
import { LocalEntitlements, type LocalOptions } from "./local-entitlements.ts";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  ResourceInfoSchema,
  type BadRequest,
  type QuotaFailure,
  type ResourceInfo,
} from "./gen/google/rpc/error_details_pb.js";

export * from "./gen/entitlements/v1/entitlement_service_pb.js";
export * from "./gen/entitlements/v1/account_pb.js";
export * from "./gen/entitlements/v1/plan_pb.js";
export * from "./gen/entitlements/v1/subscription_pb.js";
export * from "./gen/entitlements/v1/terms_pb.js";
export * from "./gen/entitlements/v1/usage_pb.js";
export * from "./gen/entitlements/v1/events_pb.js";
export { LocalEntitlements, MAX_LOCAL_USERS, type LocalOptions } from "./local-entitlements.ts";
export type { BadRequest, QuotaFailure, ResourceInfo } from "./gen/google/rpc/error_details_pb.js";
export { Code, ConnectError };

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
  /**
   * Answer HasFeature and GetPlan from memory for the users asked about, kept current by a
   * WatchEntitlements stream (LocalEntitlements). CheckQuota and every write always go to the
   * service. Call `close()` to end the stream.
   */
  readonly local?: LocalOptions;
};

export type EntitlementClient = Client<typeof EntitlementService>;

/** A client answering HasFeature and GetPlan from memory (`local`): `close()` ends its stream. */
export type LocalEntitlementClient = EntitlementClient & { readonly local: LocalEntitlements; close(): void };

/**
 * A typed EntitlementService client for Node.js backends:
 *
 *   const entitlements = createEntitlementClient({ baseUrl: "http://127.0.0.1:50051", token });
 *   const { allowed } = await entitlements.checkQuota({ userId, metric: "jobs", amount: 1n });
 */
export function createEntitlementClient(options: EntitlementClientOptions & { readonly local: LocalOptions }): LocalEntitlementClient;
export function createEntitlementClient(options: EntitlementClientOptions): EntitlementClient;
export function createEntitlementClient(options: EntitlementClientOptions): EntitlementClient | LocalEntitlementClient {
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
  const transport = options.protocol === "connect" ? createConnectTransport({ ...common, httpVersion: "1.1" }) : createGrpcTransport(common);
  const client = createClient(EntitlementService, transport);
  if (options.local === undefined) return client;
  const local = new LocalEntitlements(client, options.local);
  return {
    ...client,
    hasFeature: (request, callOptions) => local.hasFeature(request, callOptions),
    getPlan: (request, callOptions) => local.getPlan(request, callOptions),
    local,
    close: () => local.close(),
  };
}

/** Every `google.rpc.ErrorInfo.reason` the service sends, in its domain `entitlements.v1`. */
export type ErrorReason = "QUOTA_EXCEEDED" | "IDEMPOTENCY_KEY_REUSED" | "ACCOUNT_SUSPENDED";

/** An ErrorInfo of the service: its reason and what goes with it (`metric`, `used`, `limit`, `idempotency_key`, `user_id`, ...). */
export type EntitlementErrorInfo = { readonly reason: ErrorReason; readonly metadata: Readonly<Record<string, string>> };

const ERROR_REASONS: ReadonlySet<string> = new Set<ErrorReason>(["QUOTA_EXCEEDED", "IDEMPOTENCY_KEY_REUSED", "ACCOUNT_SUSPENDED"]);

/** The quota details of a call refused for quota (`resource_exhausted`): one violation per item that did not fit. */
export function quotaFailureOf(error: unknown): QuotaFailure | undefined {
  return error instanceof ConnectError ? error.findDetails(QuotaFailureSchema)[0] : undefined;
}

/** Why the service refused a call, when it says (quota exceeded, idempotency key reused, account suspended). */
export function errorInfoOf(error: unknown): EntitlementErrorInfo | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  const info = error.findDetails(ErrorInfoSchema).find((detail) => detail.domain === "entitlements.v1" && ERROR_REASONS.has(detail.reason));
  return info === undefined ? undefined : { reason: info.reason as ErrorReason, metadata: info.metadata };
}

/** The fields at fault of an `invalid_argument` answer. */
export function badRequestOf(error: unknown): BadRequest | undefined {
  return error instanceof ConnectError ? error.findDetails(BadRequestSchema)[0] : undefined;
}

/** What was not found in a `not_found` answer (a plan, metric, account, grant or reservation). */
export function resourceInfoOf(error: unknown): ResourceInfo | undefined {
  return error instanceof ConnectError ? error.findDetails(ResourceInfoSchema)[0] : undefined;
}
