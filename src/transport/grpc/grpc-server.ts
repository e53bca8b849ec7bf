import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, decodeBinaryHeader } from "@connectrpc/connect";
import { transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { toConnectError } from "../interceptors/error-mapping.ts";
import type { Call, MethodCalls } from "../method-calls.ts";
import type { Logger } from "../../platform/logger.ts";
import { encodedOnce } from "../shared-answers.ts";
import "./request-framing.ts";
import { withRequestHeaderRules } from "./request-headers.ts";
import type { TlsMaterial } from "../tls.ts";

/**
 * Native gRPC through @grpc/grpc-js's server, faster than connect-node's gRPC path
 * (docs/performance.md), with the very same service implementations, request gates and
 * interceptors: only the wire differs. Each call gets a Connect HandlerContext (method-calls.ts),
 * so gates, error mapping, logs and metrics are the code every other protocol runs.
 */
export type GrpcServerOptions = {
  readonly methods: readonly MethodCalls[];
  readonly maxMessageBytes: number;
  readonly logger: Logger;
};

const PEER = /^(?:ipv4:|ipv6:)?\[?([^\]]+?)\]?:\d+$/;
/** The last peer seen and its address: a connection's calls come one after another. */
let lastPeer = { peer: "", address: undefined as string | undefined };

/** "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000" → the address. */
function peerAddress(peer: string): string | undefined {
  if (peer !== lastPeer.peer) lastPeer = { peer, address: PEER.exec(peer)?.[1] };
  return lastPeer.address;
}

/** Adds headers to grpc-js metadata; grpc-* names belong to the transport. */
function appendToMetadata(metadata: grpc.Metadata, headers: Headers): grpc.Metadata {
  headers.forEach((value, name) => {
    if (name.startsWith("grpc-")) return;
    if (name.endsWith("-bin")) metadata.set(name, Buffer.from(decodeBinaryHeader(value)));
    else metadata.set(name, value);
  });
  return metadata;
}

/** The error as grpc-js sends it: code, message, and the details in grpc-status-details-bin. */
function serviceError(error: ConnectError, trailer: Headers): Partial<grpc.ServiceError> {
  const status = setTrailerStatus(new Headers(), error);
  const metadata = appendToMetadata(new grpc.Metadata(), trailer);
  const details = status.get("grpc-status-details-bin");
  if (details !== null) metadata.set("grpc-status-details-bin", Buffer.from(decodeBinaryHeader(details)));
  return { code: error.code as number as grpc.status, details: error.rawMessage, metadata };
}

type GrpcCall = grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;

/** Starts the call from what grpc-js tells of it; a "cancelled" before the answer aborts it. */
function startGrpcCall(calls: MethodCalls, grpcCall: GrpcCall): Call {
  const header: Record<string, string> = {};
  const metadata = grpcCall.metadata.getMap();
  for (const name in metadata) {
    const value = metadata[name];
    // Binary values are never read by the gates or services.
    if (typeof value === "string") header[name] = value;
  }
  const deadline = grpcCall.getDeadline();
  const deadlineAt = deadline instanceof Date ? deadline.getTime() : deadline;
  const call = calls.start({
    protocolName: "grpc",
    header,
    peerAddress: peerAddress(grpcCall.getPeer()),
    deadlineAt: Number.isFinite(deadlineAt) ? deadlineAt : undefined,
  });
  // grpc-js also emits "cancelled" as the stream closes after the answer: the call ignores that one.
  (grpcCall as NodeJS.EventEmitter).once("cancelled", call.cancel);
  return call;
}

/** Encodings of the shared answers by method, made once each; grpc-js copies what it sends. */
const sharedEncodings = new WeakMap<object, Map<unknown, Buffer>>();

/** The message's bytes as a Buffer over the same memory (grpc-js wants a Buffer; no copy). */
function serialize(method: DescMethod, message: Parameters<typeof toBinary>[1]): Buffer {
  return encodedOnce(sharedEncodings, message, method, () => {
    const bytes = toBinary(method.output, message);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  });
}

function parse(method: DescMethod, bytes: Buffer) {
  try {
    return fromBinary(method.input, bytes);
  } catch (error) {
    throw new ConnectError(`parse binary: ${(error as Error).message}`, Code.InvalidArgument);
  }
}

/** The initial metadata: the request id, and what the implementation put in its response header. */
function initialMetadata(call: Call): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("x-request-id", call.requestId);
  return appendToMetadata(metadata, call.context.responseHeader);
}

function handlerFor(calls: MethodCalls, logger: Logger): grpc.UntypedHandleCall {
  const { method, spec } = calls;
  if (spec.kind === "unary") {
    return (grpcCall: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const call = startGrpcCall(calls, grpcCall);
      const { context } = call;
      const fail = (error: unknown) => {
        const connectError = toConnectError(error, logger);
        grpcCall.sendMetadata(initialMetadata(call));
        callback(serviceError(connectError, context.responseTrailer) as grpc.ServiceError);
        call.finish(connectError);
      };
      void calls.unary(call, () => parse(method, grpcCall.request)).then((output) => {
        let bytes: Buffer;
        try {
          bytes = serialize(method, output);
        } catch (error) {
          // A response that cannot be encoded is a fault of ours: answered, never left hanging.
          fail(error);
          return;
        }
        grpcCall.sendMetadata(initialMetadata(call));
        callback(null, bytes, appendToMetadata(new grpc.Metadata(), context.responseTrailer));
        call.finish();
      }, fail);
    };
  }

  // Streaming: requests in as an async iterable, responses out as written messages.
  return (grpcCall: grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>) => {
    const call = startGrpcCall(calls, grpcCall);
    const { context } = call;
    const requests = (async function* () {
      if ("request" in grpcCall && grpcCall.request !== undefined) {
        yield parse(method, grpcCall.request);
        return;
      }
      for await (const chunk of grpcCall as AsyncIterable<Buffer>) yield parse(method, chunk);
    })();
    void (async () => {
      await calls.requestGate?.(context);
      grpcCall.sendMetadata(initialMetadata(call));
      const transform = transformInvokeImplementation(spec, context, calls.interceptors);
      for await (const output of transform(requests)) {
        if (!grpcCall.write(serialize(method, output))) {
          await new Promise((resolve) => grpcCall.once("drain", resolve));
        }
      }
    })().then(
      () => {
        grpcCall.end(appendToMetadata(new grpc.Metadata(), context.responseTrailer));
        call.finish();
      },
      (error: unknown) => {
        const connectError = toConnectError(error, logger);
        // An "error" event is how grpc-js streams end with a status (destroy would send none and
        // leave the call open until the client gives up).
        grpcCall.emit("error", Object.assign(new Error(connectError.rawMessage), serviceError(connectError, context.responseTrailer)));
        call.finish(connectError);
      },
    );
  };
}

/** A grpc-js server for every method; call `bindAsync` to listen. */
export function createGrpcServer(options: GrpcServerOptions): grpc.Server {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": 16 * 1024 * 1024,
    // Channelz (grpc-js's call statistics for its admin service) is not served: its per-call
    // trackers would be pure cost.
    "grpc.enable_channelz": 0,
  });
  withRequestHeaderRules(server, options.logger);
  for (const service of new Set(options.methods.map((calls) => calls.service))) {
    const definition: grpc.ServiceDefinition = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const calls of options.methods.filter((candidate) => candidate.service === service)) {
      const { method } = calls;
      Object.assign(definition, {
        [method.localName]: {
          path: `/${service.typeName}/${method.name}`,
          requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
          responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
          // Bytes in and out: parsing belongs to the call, so a malformed message is the caller's error.
          requestSerialize: (bytes: Buffer) => bytes,
          requestDeserialize: (bytes: Buffer) => bytes,
          responseSerialize: (bytes: Buffer) => bytes,
          responseDeserialize: (bytes: Buffer) => bytes,
        },
      });
      implementation[method.localName] = handlerFor(calls, options.logger);
    }
    server.addService(definition, implementation);
  }
  return server;
}

export function grpcCredentials(tls: TlsMaterial | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    tls.clientCa ?? null,
    [{ private_key: tls.key, cert_chain: tls.cert }],
    tls.clientCa !== undefined,
  );
}
