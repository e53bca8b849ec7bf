import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMethod, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createServiceImplSpec,
  decodeBinaryHeader,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { invokeUnaryImplementation, transformInvokeImplementation } from "@connectrpc/connect/protocol";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { peerAddressKey } from "./auth.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";
import { reportCall, requestIdOf, type Observed } from "./observability.ts";
import type { ServiceRegistration, TlsMaterial } from "./server.ts";

/**
 * Native gRPC through @grpc/grpc-js's server, which is several times faster than connect-node's
 * gRPC path, with the very same service implementations, request gates and interceptors: only
 * the wire differs. Each call gets a Connect HandlerContext, so gates, error mapping, logs and
 * metrics are the code every other protocol runs.
 */
export type GrpcServerOptions = {
  readonly registrations: readonly ServiceRegistration[];
  readonly interceptors: Interceptor[];
  readonly maxMessageBytes: number;
  readonly logger: Logger;
  readonly metrics: Metrics;
};

/** "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000" → the address. */
function peerAddress(peer: string): string | undefined {
  const match = /^(?:ipv4:|ipv6:)?\[?([^\]]+?)\]?:\d+$/.exec(peer);
  return match?.[1];
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

type Call = grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;

type CallContext = {
  readonly context: HandlerContext;
  readonly requestId: string;
  /** Marks the call answered: a later "cancelled" (grpc-js emits one as the stream closes) is no abort. */
  done(): void;
};

/**
 * The call's Connect HandlerContext. Built here rather than by createHandlerContext, which links
 * two more AbortControllers and copies the headers once more: a third of the bridge's cost per
 * call. One controller carries the caller's cancellation and the deadline.
 */
function contextFor(call: Call, service: DescService, method: DescMethod): CallContext {
  const header: Record<string, string> = {};
  for (const [name, value] of Object.entries(call.metadata.getMap())) {
    // Binary values are never read by the gates or services.
    if (typeof value === "string") header[name] = value;
  }
  const requestId = requestIdOf(header["x-request-id"]);
  header["x-request-id"] = requestId;
  const deadline = call.getDeadline();
  const deadlineAt = deadline instanceof Date ? deadline.getTime() : deadline;
  const timed = Number.isFinite(deadlineAt);
  // Read by the deadline interceptor, as on every other protocol.
  if (timed) header["grpc-timeout"] = `${Math.max(1, Math.floor(deadlineAt - Date.now()))}m`;
  const controller = new AbortController();
  const timer = timed
    ? setTimeout(() => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), Math.max(0, deadlineAt - Date.now()))
    : undefined;
  let answered = false;
  (call as NodeJS.EventEmitter).once("cancelled", () => {
    clearTimeout(timer);
    if (!answered) controller.abort(new ConnectError("the caller cancelled", Code.Canceled));
  });
  const context: HandlerContext = {
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: `/${service.typeName}/${method.name}`,
    signal: controller.signal,
    timeoutMs: () => (timed ? deadlineAt - Date.now() : undefined),
    requestHeader: new Headers(header),
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    values: createContextValues().set(peerAddressKey, peerAddress(call.getPeer())),
  };
  return {
    context,
    requestId,
    done: () => {
      answered = true;
      clearTimeout(timer);
    },
  };
}

/** The message's bytes as a Buffer over the same memory (grpc-js wants a Buffer; no copy). */
function serialize(method: DescMethod, message: Parameters<typeof toBinary>[1]): Buffer {
  const bytes = toBinary(method.output, message);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function parse(method: DescMethod, bytes: Buffer) {
  try {
    return fromBinary(method.input, bytes);
  } catch (error) {
    throw new ConnectError(`parse binary: ${(error as Error).message}`, Code.InvalidArgument);
  }
}

function asConnectError(error: unknown, logger: Logger): ConnectError {
  if (error instanceof ConnectError) return error;
  // Errors from service code are mapped by the interceptors; anything else is a bug here.
  logger.error({ err: error }, "gRPC call failed outside the interceptors");
  return new ConnectError("internal error", Code.Internal);
}

function handlerFor(
  registration: ServiceRegistration,
  spec: MethodImplSpec,
  options: GrpcServerOptions,
): grpc.UntypedHandleCall {
  const { service, requestGate } = registration;
  const { method } = spec;
  const report = reportCall(options.logger, options.metrics, { service, method });
  const finish = (call: CallContext, started: number, code: string) => {
    call.done();
    report({ requestId: call.requestId, code, durationMs: performance.now() - started, contextValues: call.context.values } satisfies Observed);
  };
  const initialMetadata = (call: Call, context: HandlerContext, requestId: string) => {
    const metadata = new grpc.Metadata();
    metadata.set("x-request-id", requestId);
    call.sendMetadata(appendToMetadata(metadata, context.responseHeader));
  };

  if (spec.kind === "unary") {
    return (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const started = performance.now();
      const callContext = contextFor(call, service, method);
      const { context, requestId } = callContext;
      void (async () => {
        await requestGate?.(context);
        return invokeUnaryImplementation(spec, context, parse(method, call.request), options.interceptors);
      })().then(
        (output) => {
          initialMetadata(call, context, requestId);
          callback(null, serialize(method, output), appendToMetadata(new grpc.Metadata(), context.responseTrailer));
          finish(callContext, started, "ok");
        },
        (error: unknown) => {
          const connectError = asConnectError(error, options.logger);
          initialMetadata(call, context, requestId);
          callback(serviceError(connectError, context.responseTrailer) as grpc.ServiceError);
          finish(callContext, started, codeToString(connectError.code));
        },
      );
    };
  }

  // Streaming: requests in as an async iterable, responses out as written messages.
  return (call: grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>) => {
    const started = performance.now();
    const callContext = contextFor(call, service, method);
    const { context, requestId } = callContext;
    const requests = (async function* () {
      if ("request" in call && call.request !== undefined) {
        yield parse(method, call.request);
        return;
      }
      for await (const chunk of call as AsyncIterable<Buffer>) yield parse(method, chunk);
    })();
    void (async () => {
      await requestGate?.(context);
      initialMetadata(call, context, requestId);
      const transform = transformInvokeImplementation(spec, context, options.interceptors);
      for await (const output of transform(requests)) {
        if (!call.write(serialize(method, output))) {
          await new Promise((resolve) => call.once("drain", resolve));
        }
      }
    })().then(
      () => {
        call.end(appendToMetadata(new grpc.Metadata(), context.responseTrailer));
        finish(callContext, started, "ok");
      },
      (error: unknown) => {
        const connectError = asConnectError(error, options.logger);
        call.destroy(Object.assign(new Error(connectError.rawMessage), serviceError(connectError, context.responseTrailer)));
        finish(callContext, started, codeToString(connectError.code));
      },
    );
  };
}

/** A grpc-js server for every registered service; call `bind` to listen. */
export function createGrpcServer(options: GrpcServerOptions): grpc.Server {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": 16 * 1024 * 1024,
  });
  for (const registration of options.registrations) {
    const spec = createServiceImplSpec(registration.service, registration.implementation);
    const definition: grpc.ServiceDefinition = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const method of registration.service.methods) {
      Object.assign(definition, {
        [method.localName]: {
          path: `/${registration.service.typeName}/${method.name}`,
          requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
          responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
          // Bytes in and out: parsing belongs to the call, so a malformed message is the caller's error.
          requestSerialize: (bytes: Buffer) => bytes,
          requestDeserialize: (bytes: Buffer) => bytes,
          responseSerialize: (bytes: Buffer) => bytes,
          responseDeserialize: (bytes: Buffer) => bytes,
        },
      });
      implementation[method.localName] = handlerFor(registration, spec.methods[method.localName]!, options);
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
