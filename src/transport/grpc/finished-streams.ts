import type http2 from "node:http2";
import type * as grpc from "@grpc/grpc-js";

const ignore = (): void => {};

/** Once a stream has closed (nothing is emitted after "close"), its listeners let go of the call. */
function releaseOnClose(stream: http2.ServerHttp2Stream): void {
  stream.once("close", () => {
    stream.removeAllListeners();
    // A late error would otherwise be thrown for want of a listener.
    stream.on("error", ignore);
  });
}

/**
 * Lets a finished call's objects go with its HTTP/2 stream's close. Node's stream objects can
 * outlive young-generation collections until a full one (their native handles are held weakly,
 * which the scavenger counts as roots), and with them all that their listeners reach: grpc-js's
 * call and ours. Without the listeners less is promoted per call, and more replicas settle where
 * calls die young (docs/performance.md). Call after each bind: it reads grpc-js's HTTP/2 servers,
 * one of the grpc-js internals we touch, held to account by
 * test/transport/grpc/finished-streams.test.ts.
 */
export function releaseFinishedStreams(server: grpc.Server): void {
  const servers = (server as unknown as { http2Servers?: Map<http2.Http2Server, unknown> }).http2Servers;
  if (servers === undefined) throw new Error("grpc-js no longer has http2Servers: see releaseFinishedStreams");
  for (const http2Server of servers.keys()) {
    if (!http2Server.listeners("stream").includes(releaseOnClose)) http2Server.on("stream", releaseOnClose);
  }
}
