import { randomUUID } from "node:crypto";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { createContextKey, type ContextValues } from "@connectrpc/connect";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { authenticatedUserKey } from "../auth/gates.ts";
import type { Logger } from "../platform/logger.ts";
import type { Metrics } from "../platform/metrics.ts";
import { requestUserKey } from "./interceptors/call-attributes.ts";

/**
 * What every transport does around a call, whichever server runs it (connect-node's router, the
 * grpc-js server, the /v1 layer): a request id, the caller's deadline as a value the
 * interceptors read, and one report (log line and metrics) when the call ends. The gate, load
 * shedding, deadline and error mapping are the router options' interceptors (routes.ts).
 */

/** When the caller gives up, in ms since the epoch; undefined without a deadline. */
export const callDeadlineKey = createContextKey<number | undefined>(undefined, { description: "when the caller gives up" });

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/** The caller's x-request-id (the header's value) when it is a sane one, else a new id. */
export function requestIdOf(given: string | null | undefined): string {
  return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
}

/** The deadline a caller set, in ms from now: Connect's `connect-timeout-ms`, gRPC's `grpc-timeout`. */
export function requestTimeoutMs(headers: Pick<Headers, "get">): number | undefined {
  const connect = parseConnectTimeout(headers.get("connect-timeout-ms"), NO_LIMIT);
  if (connect.error === undefined && connect.timeoutMs !== undefined) return connect.timeoutMs;
  const grpc = parseGrpcTimeout(headers.get("grpc-timeout"), NO_LIMIT);
  return grpc.error === undefined ? grpc.timeoutMs : undefined;
}

/** The deadline the caller's timeout headers set, in ms since the epoch. */
export function requestDeadline(headers: Pick<Headers, "get">): number | undefined {
  const timeoutMs = requestTimeoutMs(headers);
  return timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
}

/** How a call ended, for its report. */
export type CallOutcome = {
  readonly requestId: string;
  /** The code's name ("ok", "not_found", ...). */
  readonly code: string;
  readonly durationMs: number;
  readonly contextValues: ContextValues | undefined;
};

export type CallReport = (outcome: CallOutcome) => void;

/** The report of each call of a method: one log line and the RPC metrics. */
export function reportCall(logger: Logger, metrics: Metrics, rpc: { readonly service: DescService; readonly method: DescMethod }): CallReport {
  const service = rpc.service.typeName;
  const method = rpc.method.name;
  // The call line holds ids, codes and numbers only: nothing to redact, so no redaction pass. The
  // method's name is bound once, serialized with the child rather than on every line.
  const callLog = logger.child({ rpc: `${service}/${method}` }, { redact: { paths: [] } });
  // The metric series of each code, found once: prom-client hashes the labels on every lookup.
  const series = new Map<string, { readonly requests: { inc(): void }; readonly duration: { observe(seconds: number): void } }>();
  const seriesOf = (code: string) => {
    let found = series.get(code);
    if (found === undefined) {
      found = { requests: metrics.rpcRequests.labels(service, method, code), duration: metrics.rpcDuration.labels(service, method, code) };
      series.set(code, found);
    }
    return found;
  };
  return ({ requestId, code, durationMs, contextValues }) => {
    const { requests, duration } = seriesOf(code);
    requests.inc();
    duration.observe(durationMs / 1000);
    const user = contextValues?.get(authenticatedUserKey)?.userId ?? contextValues?.get(requestUserKey);
    callLog.info(
      { request_id: requestId, code, duration_ms: Math.round(durationMs * 100) / 100, user_id: user },
      "rpc",
    );
  };
}

/** A call under way, from its start to its one report. */
export type CallLifecycle = {
  readonly requestId: string;
  /** Reports the call as ended with `code`. */
  end(code: string): void;
};

/**
 * Starts a call's lifecycle: accepts or makes its request id, puts its deadline in
 * `contextValues` for the interceptors, and starts its clock.
 */
export function beginCall(
  report: CallReport,
  givenRequestId: string | null | undefined,
  contextValues: ContextValues | undefined,
  deadlineAt: number | undefined,
): CallLifecycle {
  const started = performance.now();
  const requestId = requestIdOf(givenRequestId);
  if (deadlineAt !== undefined) contextValues?.set(callDeadlineKey, deadlineAt);
  return {
    requestId,
    end: (code) => report({ requestId, code, durationMs: performance.now() - started, contextValues }),
  };
}
