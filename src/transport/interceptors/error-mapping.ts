import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  StatementTimeoutError,
  ConnectionError as DatabaseConnectionError,
  BackendTerminatedError,
  BackendTerminatedUnexpectedlyError,
} from "slonik";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  ResourceInfoSchema,
} from "../../../gen/google/rpc/error_details_pb.js";
import {
  AccountSuspendedError,
  CapacityError,
  EntitlementError,
  OutOfRangeError,
  ShuttingDownError,
  FailedPreconditionError,
  PermissionDeniedError,
  IdempotencyKeyReusedError,
  InvalidArgumentError,
  UnknownResourceError,
} from "../../domain/errors.ts";
import { QuotaExceededError, refusalMessage, type QuotaRefusal } from "../../domain/quota.ts";
import { ConnectionAcquireTimeoutError } from "../../db/acquire-timeout.ts";
import type { Logger } from "../../platform/logger.ts";

/** The domain of ErrorInfo reasons sent by this service. */
export const ERROR_DOMAIN = "entitlements.v1";

/** A domain refusal as the RPC error callers see: its code and its google.rpc details. */
export function entitlementErrorToConnect(error: EntitlementError): ConnectError {
  if (error instanceof InvalidArgumentError) {
    return new ConnectError(error.message, Code.InvalidArgument, undefined, [
      {
        desc: BadRequestSchema,
        value: { fieldViolations: error.violations.map((v) => ({ field: v.field, description: v.description })) },
      },
    ]);
  }
  if (error instanceof UnknownResourceError) {
    return new ConnectError(error.message, Code.NotFound, undefined, [
      {
        desc: ResourceInfoSchema,
        value: { resourceType: error.resourceType, resourceName: error.resourceName, description: error.message },
      },
    ]);
  }
  if (error instanceof QuotaExceededError) {
    // One violation per amount that did not fit; ErrorInfo tells the first of them.
    const [{ quota, requested }] = error.refusals as [QuotaRefusal, ...QuotaRefusal[]];
    return new ConnectError(error.message, Code.ResourceExhausted, undefined, [
      {
        desc: QuotaFailureSchema,
        value: {
          violations: error.refusals.map((refusal) => ({
            subject: `user:${error.userId}`,
            description: refusalMessage(refusal.quota, refusal.requested),
            quotaMetric: refusal.quota.metric,
            quotaId: refusal.quota.period === null ? `${refusal.quota.metric}-total` : `${refusal.quota.metric}-per-period`,
            quotaValue: refusal.quota.limit ?? 0n,
            quotaDimensions: { metric: refusal.quota.metric },
          })),
        },
      },
      {
        desc: ErrorInfoSchema,
        value: {
          reason: "QUOTA_EXCEEDED",
          domain: ERROR_DOMAIN,
          metadata: {
            metric: quota.metric,
            used: String(quota.used),
            limit: quota.limit === null ? "unlimited" : String(quota.limit),
            requested: String(requested),
            ...(quota.period === null ? {} : { resets_at: quota.period.end.toISOString() }),
          },
        },
      },
    ]);
  }
  if (error instanceof IdempotencyKeyReusedError) {
    return new ConnectError(error.message, Code.FailedPrecondition, undefined, [
      {
        desc: ErrorInfoSchema,
        value: { reason: "IDEMPOTENCY_KEY_REUSED", domain: ERROR_DOMAIN, metadata: { idempotency_key: error.idempotencyKey } },
      },
    ]);
  }
  if (error instanceof AccountSuspendedError) {
    return new ConnectError(error.message, Code.PermissionDenied, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "ACCOUNT_SUSPENDED", domain: ERROR_DOMAIN, metadata: { user_id: error.userId } } },
    ]);
  }
  if (error instanceof PermissionDeniedError) {
    return new ConnectError(error.message, Code.PermissionDenied);
  }
  if (error instanceof FailedPreconditionError) {
    return new ConnectError(error.message, Code.FailedPrecondition);
  }
  if (error instanceof OutOfRangeError) {
    return new ConnectError(error.message, Code.OutOfRange);
  }
  if (error instanceof CapacityError) {
    return new ConnectError(error.message, Code.ResourceExhausted);
  }
  if (error instanceof ShuttingDownError) {
    return new ConnectError(error.message, Code.Unavailable);
  }
  return new ConnectError(error.message, Code.Internal);
}

const CONNECTION_ERRNOS = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH"]);
const CONNECTION_FAILURE_MESSAGES = /^(Client is pending destroy|Connection terminated|Client has encountered a connection error)/;

/** The connection to PostgreSQL broke (as Slonik or the pg driver report it): worth a retry. */
function isDatabaseConnectionFailure(error: unknown): boolean {
  if (
    error instanceof DatabaseConnectionError ||
    error instanceof BackendTerminatedError ||
    error instanceof BackendTerminatedUnexpectedlyError
  ) {
    return true;
  }
  if (!(error instanceof Error)) return false;
  const { code } = error as NodeJS.ErrnoException;
  return (code !== undefined && CONNECTION_ERRNOS.has(code)) || CONNECTION_FAILURE_MESSAGES.test(error.message);
}

/**
 * The one place where errors become RPC errors. Domain refusals map to their codes; database
 * outages to `unavailable` and timeouts to `deadline_exceeded`, so callers know to retry; any
 * other error is logged with its cause and sent as a bare `internal`.
 */
export function toConnectError(error: unknown, logger: Logger): ConnectError {
  if (error instanceof ConnectError) {
    return error;
  }
  if (error instanceof EntitlementError) {
    return entitlementErrorToConnect(error);
  }
  if (error instanceof ConnectionAcquireTimeoutError) {
    logger.warn({ err: error }, "database pool exhausted");
    return new ConnectError("the database is busy; retry later", Code.Unavailable);
  }
  if (isDatabaseConnectionFailure(error)) {
    logger.warn({ err: error }, "database unavailable");
    return new ConnectError("the database is unavailable; retry later", Code.Unavailable);
  }
  if (error instanceof StatementTimeoutError) {
    logger.warn({ err: error }, "database statement timed out");
    return new ConnectError("the database did not answer in time", Code.DeadlineExceeded);
  }
  logger.error({ err: error }, "unexpected error");
  return new ConnectError("internal error", Code.Internal);
}

/** The messages of a response stream, with an error that ends it mapped as any other. */
async function* mappingErrors<T>(messages: AsyncIterable<T>, logger: Logger): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw toConnectError(error, logger);
  }
}

export function errorMappingInterceptor(logger: Logger): Interceptor {
  // Made once: a call then costs one `then`, where an async function would cost its frame too.
  const mapped = (response: Awaited<ReturnType<Parameters<Interceptor>[0]>>) =>
    response.stream ? { ...response, message: mappingErrors(response.message, logger) } : response;
  const rethrown = (error: unknown): never => {
    throw toConnectError(error, logger);
  };
  return (next) => (request) => {
    try {
      return next(request).then(mapped, rethrown);
    } catch (error) {
      return Promise.reject(toConnectError(error, logger));
    }
  };
}
