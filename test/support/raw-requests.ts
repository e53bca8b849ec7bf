import http from "node:http";
import http2 from "node:http2";

/** What a raw request got back: the HTTP status, the gRPC status and message (from headers, trailers or a gRPC-Web trailer frame), and the body. */
export type RawAnswer = {
  readonly status: number;
  readonly grpcStatus: string | undefined;
  readonly grpcMessage: string | undefined;
  readonly body: Buffer;
};

/** The gRPC status of a gRPC-Web body's trailer frame (flag 0x80), if it has one. */
function grpcWebTrailer(body: Buffer): Record<string, string> {
  const trailer: Record<string, string> = {};
  let offset = 0;
  while (offset + 5 <= body.length) {
    const length = body.readUInt32BE(offset + 1);
    if ((body[offset]! & 0x80) === 0x80) {
      for (const line of body.subarray(offset + 5, offset + 5 + length).toString("latin1").split("\r\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) trailer[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
    }
    offset += 5 + length;
  }
  return trailer;
}

function answer(status: number, headers: Record<string, unknown>, trailers: Record<string, unknown>, body: Buffer): RawAnswer {
  const webTrailer = grpcWebTrailer(/grpc-web/.test(String(headers["content-type"] ?? "")) ? body : Buffer.alloc(0));
  const pick = (name: string) => (headers[name] ?? trailers[name] ?? webTrailer[name]) as string | undefined;
  const message = pick("grpc-message");
  return { status, grpcStatus: pick("grpc-status"), grpcMessage: message === undefined ? undefined : decodeURIComponent(message), body };
}

/** An HTTP/2 connection to a local port that sends headers of any size as given: the server's limits are what is tested. */
export function http2Connect(port: number): http2.ClientHttp2Session {
  return http2.connect(`http://127.0.0.1:${port}`, { maxSendHeaderBlockLength: 1024 * 1024 });
}

/** One HTTP/2 POST over a connection of its own (native gRPC), the body sent as given. */
export async function http2Post(port: number, path: string, headers: Record<string, string>, body: Buffer): Promise<RawAnswer> {
  const session = http2Connect(port);
  try {
    return await http2PostOn(session, path, headers, body);
  } finally {
    session.close();
  }
}

/** One HTTP/2 POST on `session`, the body sent as given. */
export function http2PostOn(session: http2.ClientHttp2Session, path: string, headers: Record<string, string>, body: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    session.once("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, te: "trailers", ...headers });
    let responseHeaders: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    stream.on("response", (received) => (responseHeaders = received));
    stream.on("trailers", (received) => (trailers = received));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      session.off("error", reject);
      resolve(answer(Number(responseHeaders[":status"]), responseHeaders, trailers, Buffer.concat(chunks)));
    });
    stream.on("error", reject);
    stream.end(body);
  });
}

/** One HTTP/1.1 request over a connection of its own, the path and body sent byte for byte. */
export function http1Request(port: number, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: "127.0.0.1", port, path, method, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve(answer(response.statusCode ?? 0, response.headers, response.trailers, Buffer.concat(chunks))));
    });
    request.on("error", reject);
    request.end(body);
  });
}
