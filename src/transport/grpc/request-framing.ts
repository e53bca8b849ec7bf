import * as grpc from "@grpc/grpc-js";
import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors.js";

type SendStatus = (this: unknown, status: { code: grpc.status; details?: string; metadata?: grpc.Metadata | null }) => void;
type Decompress = (this: unknown, message: Buffer, encoding: string) => Buffer | Promise<Buffer>;
const prototype = BaseServerInterceptingCall.prototype as unknown as { decompressMessage: Decompress; sendStatus: SendStatus };
const sendStatus = prototype.sendStatus;

/** grpc-js's refusal of a unary or server-streaming request without exactly one message. */
const MISFRAMED = /^Received (a second|no) request message for server streaming method (\S+)$/;

/**
 * The framing rules every transport applies to a request (docs/errors.md): a request that is not
 * exactly the messages its method takes, one for unary and server-streaming calls, is the
 * caller's error, `invalid_argument`. grpc-js refuses a missing or second message itself, with
 * UNIMPLEMENTED ("... for server streaming method" even for unary ones): its status is rewritten
 * as it is sent, which costs a call nothing, where an interceptor wrapped every call
 * (docs/performance.md). One of the grpc-js internals we touch; test/e2e/malformed-requests.test.ts
 * holds it to account on every upgrade.
 */
prototype.sendStatus = function (status) {
  const misframed = status.code === grpc.status.UNIMPLEMENTED && typeof status.details === "string" ? MISFRAMED.exec(status.details) : null;
  if (misframed === null) return sendStatus.call(this, status);
  const [, which, path] = misframed;
  const details = which === "no" ? `request ended before a complete message for ${path}` : `request has more than one message for ${path}, which takes one`;
  return sendStatus.call(this, { ...status, code: grpc.status.INVALID_ARGUMENT, details });
};

const decompress = prototype.decompressMessage;

/**
 * grpc-js reads a message whose compressed flag is set, with no grpc-encoding, as if it were not
 * compressed (the bytes would then decode as some other message): refused instead, as connect-es
 * refuses it. One of the grpc-js internals we touch; test/e2e/malformed-requests.test.ts holds
 * it to account on every upgrade.
 */
prototype.decompressMessage = function (message, encoding) {
  if (encoding === "identity" && message[0] !== 0) {
    return Promise.reject({
      code: grpc.status.INVALID_ARGUMENT,
      details: "request message is marked compressed but the request names no grpc-encoding",
    });
  }
  return decompress.call(this, message, encoding);
};
