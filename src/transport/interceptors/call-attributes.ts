import { Code, createContextKey, type Interceptor } from "@connectrpc/connect";
import { MAX_USER_ID_LENGTH } from "../../domain/validation.ts";
import type { Metrics } from "../../platform/metrics.ts";

/** The user a call is about, when its request names one (for the request log). */
export const requestUserKey = createContextKey<string | undefined>(undefined, { description: "user of the request" });

/**
 * Records what the request log and the metrics need from the messages: the user a request names,
 * and quota denials (IncrementUsage refused, CheckQuota not allowed) by metric.
 */
export function callAttributesInterceptor(metrics: Metrics): Interceptor {
  const countingDenials: Interceptor = (next) => async (request) => {
    const message = request.message as { metric?: unknown };
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
  return (next) => {
    const counted = countingDenials(next);
    return (request) => {
      const message = request.message as { userId?: unknown };
      if (typeof message.userId === "string" && message.userId !== "") {
        request.contextValues.set(requestUserKey, firstCharacters(message.userId, MAX_USER_ID_LENGTH));
      }
      return request.method.name === "CheckQuota" || request.method.name === "IncrementUsage" ? counted(request) : next(request);
    };
  };
}

/** At most `count` characters (code points, as user ids are measured) of `value`, for the log. */
function firstCharacters(value: string, count: number): string {
  return value.length <= count ? value : Array.from(value).slice(0, count).join("");
}
