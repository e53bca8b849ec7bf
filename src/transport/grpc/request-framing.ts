import * as grpc from "@grpc/grpc-js";
import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors.js";

/**
 * The framing rules every transport applies to a request (docs/errors.md): a request that is not
 * exactly the messages its method takes, one for unary and server-streaming calls, is the
 * caller's error, `invalid_argument`. grpc-js answers a missing or second message with
 * UNIMPLEMENTED ("... for server streaming method" even for unary ones); this interceptor answers
 * before grpc-js does.
 */
export const requestFramingInterceptor: grpc.ServerInterceptor = (method, call) => {
  if (method.requestStream) return new grpc.ServerInterceptingCall(call);
  let messages = 0;
  let refused = false;
  const refuse = (details: string) => {
    refused = true;
    call.sendStatus({ code: grpc.status.INVALID_ARGUMENT, details, metadata: new grpc.Metadata() });
  };
  return new grpc.ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMessage: (message, nextMessage) => {
          messages += 1;
          if (messages > 1) refuse(`request has more than one message for ${method.path}, which takes one`);
          else nextMessage(message);
        },
        onReceiveHalfClose: (nextHalfClose) => {
          if (refused) return;
          if (messages === 0) refuse(`request ended before a complete message for ${method.path}`);
          else nextHalfClose();
        },
      }),
  });
};

type Decompress = (this: unknown, message: Buffer, encoding: string) => Buffer | Promise<Buffer>;
const prototype = BaseServerInterceptingCall.prototype as unknown as { decompressMessage: Decompress };
const decompress = prototype.decompressMessage;

/**
 * grpc-js reads a message whose compressed flag is set, with no grpc-encoding, as if it were not
 * compressed (the bytes would then decode as some other message): refused instead, as connect-es
 * refuses it. One of the two grpc-js internals we touch; test/e2e/malformed-requests.test.ts holds
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
