import type { Socket } from "node:net";

/**
 * The most bytes of request headers either port reads, HTTP/1.1 and HTTP/2 alike: room for a
 * 64 KiB bearer token, which then gets the gate's answer (unauthenticated) on a connection that
 * stays open, instead of a reset at Node's defaults (16 KiB on HTTP/1.1, 64 KiB on HTTP/2).
 */
export const MAX_REQUEST_HEADER_BYTES = 96 * 1024;

/** How long a refused HTTP/1.1 connection still reads what its client sends, so it sees the answer. */
const LINGER_MS = 2000;

const ANSWERS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: "431 Request Header Fields Too Large",
  HPE_REQUEST_TIMEOUT: "408 Request Timeout",
};

/**
 * The answer to an HTTP/1.1 request Node cannot parse (headers over the limit, malformed): 431,
 * 408 or 400, then the connection closes once the client has had time to read it. Node's own
 * handler destroys the socket at once, and the unread request bytes then make the kernel reset
 * the connection, so a client still sending its headers never sees the status.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable || socket.destroyed) {
    socket.destroy();
    return;
  }
  const status = ANSWERS[error.code ?? ""] ?? "400 Bad Request";
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  // Read and drop the rest of the request until the client closes, or the linger ends.
  socket.resume();
  socket.once("close", () => clearTimeout(linger));
  const linger = setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
