import cors from "cors";
import { cors as connectCors } from "@connectrpc/connect";
import type { NodeRequest, NodeResponse } from "./node-http.ts";

/** A Node request handler of the HTTP port. */
type Handler = (request: NodeRequest, response: NodeResponse) => void;

/**
 * The HTTP port's handler with CORS for browsers on `origins` (`*`: any origin), through the
 * `cors` package: preflights are answered, and answers name the origin and the headers scripts
 * may read. What the protocols need (connect-es's lists), plus the credential, the request id
 * and `/v1`'s conditional reads. None is sent when `origins` is empty.
 */
export function withCors(origins: readonly string[], handler: Handler): Handler {
  if (origins.length === 0) return handler;
  const apply = cors({
    origin: origins.includes("*") ? "*" : [...origins],
    methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    allowedHeaders: [...connectCors.allowedHeaders, "Authorization", "X-Request-Id", "If-None-Match"],
    exposedHeaders: [...connectCors.exposedHeaders, "X-Request-Id", "ETag", "WWW-Authenticate", "Retry-After"],
    // Browsers cache a preflight this long (Chrome caps it at 2 hours).
    maxAge: 7200,
  });
  return (request, response) => apply(request as never, response as never, () => handler(request, response));
}
