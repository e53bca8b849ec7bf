import * as grpc from "@grpc/grpc-js";
import type http2 from "node:http2";
import type { Logger } from "../../platform/logger.ts";
import { MAX_REQUEST_HEADER_BYTES } from "../request-headers.ts";

/**
 * The request header rules of the HTTP/1.1 port, on grpc-js's HTTP/2 server, through the options
 * it creates that server with (private: grpc-js takes no such option; a grpc-js internal
 * we touch, held to account by test/e2e/request-headers.test.ts):
 * - a header value with spaces around it is kept, as HTTP/1.1 keeps it (without them), where
 *   Node's HTTP/2 drops the whole header, so a token with a trailing space counted as none;
 * - headers up to MAX_REQUEST_HEADER_BYTES, where Node's 64 KiB default resets the stream.
 */
export function withRequestHeaderRules(server: grpc.Server, logger: Logger): void {
  const internals = server as unknown as { commonServerOptions?: http2.ServerOptions };
  const options = internals.commonServerOptions;
  if (options === undefined) throw new Error("grpc-js no longer has commonServerOptions: see withRequestHeaderRules");
  options.strictFieldWhitespaceValidation = false;
  options.settings = { ...options.settings, maxHeaderListSize: MAX_REQUEST_HEADER_BYTES };
  // A value grpc-js cannot keep (a token with a tab after it) is dropped and logged with the
  // value itself: grpc-js's log goes to ours, with credentials cut out.
  const report = (...parts: unknown[]) => logger.warn({ grpcJs: parts.map(String).join(" ").replace(/authorization.*/is, "authorization: [redacted]") }, "grpc-js");
  grpc.setLogger({ error: report, info: report, debug: report } as unknown as Partial<Console>);
}
