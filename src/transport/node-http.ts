import type http from "node:http";
import type http2 from "node:http2";

/** A request as Node's HTTP/1.1 and HTTP/2 compatibility servers give it. */
export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
/** A response as Node's HTTP/1.1 and HTTP/2 compatibility servers give it. */
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
