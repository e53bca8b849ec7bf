import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createServiceImplSpec,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { peerAddressKey } from "../auth/gates.ts";
import { ParsedHeaders } from "./parsed-headers.ts";
import type { Logger } from "../platform/logger.ts";
import type { Metrics } from "../platform/metrics.ts";
import { beginCall, reportCall, type CallReport } from "./call-lifecycle.ts";
import type { ServiceRegistration } from "./routes.ts";

/** What a server knows of a call as it starts. */
export type CallStart = {
  readonly protocolName: string;
  /** The request headers, names in lower case. */
  readonly header: Record<string, string>;
  readonly peerAddress: string | undefined;
  /** When the caller gives up, in ms since the epoch; undefined without a deadline. */
  readonly deadlineAt: number | undefined;
};

/** A call under way: its Connect context, and what the server tells it. */
export type Call = {
  readonly context: HandlerContext;
  readonly requestId: string;
  /** The caller went away before the answer: aborts the call's signal. */
  cancel(): void;
  /** The answer is sent (or failed with `error`): stops the deadline and reports the call. */
  finish(error?: ConnectError): void;
};

/**
 * One method as every server that does not go through connect-node's router (the grpc-js server
 * and the /v1 layer) runs it: the same gate, interceptors and implementation, the same request
 * ids, log line and metrics.
 */
export type MethodCalls = {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly spec: MethodImplSpec;
  readonly requestGate: ServiceRegistration["requestGate"];
  readonly interceptors: Interceptor[];
  start(start: CallStart): Call;
  /** The gate, then (with the request `input` gives) the interceptors and the implementation. */
  unary(call: Call, input: () => Message): Promise<Message>;
};

export type CallOptions = {
  readonly interceptors: Interceptor[];
  readonly logger: Logger;
  readonly metrics: Metrics;
};

/**
 * The call's Connect HandlerContext. Built here rather than by createHandlerContext, which links
 * two more AbortControllers and copies the headers once more: one controller carries the caller's
 * cancellation and the deadline.
 */
function startCall(service: DescService, method: DescMethod, start: CallStart, report: CallReport): Call {
  const { header, deadlineAt } = start;
  const values = createContextValues().set(peerAddressKey, start.peerAddress);
  const lifecycle = beginCall(report, header["x-request-id"], values, deadlineAt);
  header["x-request-id"] = lifecycle.requestId;
  const controller = new AbortController();
  const timer =
    deadlineAt === undefined
      ? undefined
      : setTimeout(
          () => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
          Math.max(0, deadlineAt - Date.now()),
        );
  let finished = false;
  const context: HandlerContext = {
    service,
    method,
    protocolName: start.protocolName,
    requestMethod: "POST",
    url: `/${service.typeName}/${method.name}`,
    signal: controller.signal,
    timeoutMs: () => (deadlineAt === undefined ? undefined : deadlineAt - Date.now()),
    requestHeader: new ParsedHeaders(header),
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    values,
  };
  return {
    context,
    requestId: lifecycle.requestId,
    cancel: () => {
      clearTimeout(timer);
      if (!finished) controller.abort(new ConnectError("the caller cancelled", Code.Canceled));
    },
    finish: (error) => {
      finished = true;
      clearTimeout(timer);
      lifecycle.end(error === undefined ? "ok" : codeToString(error.code));
    },
  };
}

/** The call a request belongs to: interceptors that make a new request keep it (a spread copies symbols). */
const callContext = Symbol("call context");
type CallRequest = UnaryRequest & { readonly [callContext]: HandlerContext };

/**
 * A unary method's implementation behind the interceptors, chained once for every call rather
 * than per call as connect's invokeUnaryImplementation does; each call's request carries its
 * context, passed to the implementation as it is unless an interceptor changed what it holds.
 */
function unaryInvoker(spec: MethodImplSpec & { kind: "unary" }, interceptors: readonly Interceptor[]) {
  const { method } = spec;
  const implementation = async (request: UnaryRequest): Promise<UnaryResponse> => {
    const context = (request as CallRequest)[callContext];
    const unchanged = request.header === context.requestHeader && request.signal === context.signal && request.contextValues === context.values;
    const handlerContext = unchanged ? context : { ...context, service: request.service, requestHeader: request.header, signal: request.signal, values: request.contextValues };
    const output = await spec.impl(request.message, handlerContext);
    return { stream: false, service: method.parent, method, header: context.responseHeader, trailer: context.responseTrailer, message: create(method.output, output) };
  };
  const invoke = interceptors.reduceRight<(request: UnaryRequest) => Promise<UnaryResponse>>(
    (next, interceptor) => interceptor(next as Parameters<Interceptor>[0]) as typeof next,
    implementation,
  );
  return async (context: HandlerContext, input: Message): Promise<Message> => {
    const request: CallRequest = {
      stream: false,
      service: method.parent,
      method,
      requestMethod: context.requestMethod,
      url: context.url,
      signal: context.signal,
      header: context.requestHeader,
      contextValues: context.values,
      message: input,
      [callContext]: context,
    };
    const { message, header, trailer } = await invoke(request);
    copyHeaders(header, context.responseHeader);
    copyHeaders(trailer, context.responseTrailer);
    return message;
  };
}

/** An interceptor's response headers into the call's (nothing to do when they are the call's). */
function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const name of [...to.keys()]) to.delete(name);
  from.forEach((value, name) => to.append(name, value));
}

/** Every method of the registrations, ready to be served. */
export function methodCalls(registrations: readonly ServiceRegistration[], options: CallOptions): MethodCalls[] {
  return registrations.flatMap(({ service, implementation, requestGate }) => {
    const spec = createServiceImplSpec(service, implementation);
    return service.methods.map((method): MethodCalls => {
      const methodSpec = spec.methods[method.localName]!;
      const report = reportCall(options.logger, options.metrics, { service, method });
      const invoke = methodSpec.kind === "unary" ? unaryInvoker(methodSpec, options.interceptors) : undefined;
      return {
        service,
        method,
        spec: methodSpec,
        requestGate,
        interceptors: options.interceptors,
        start: (start) => startCall(service, method, start, report),
        unary: (call, input) => {
          try {
            if (invoke === undefined) throw new ConnectError(`${method.name} is not unary`, Code.Unimplemented);
            // A gate that decides at once (a service token) costs no turn of the microtask queue.
            const gated = requestGate?.(call.context);
            return gated === undefined ? invoke(call.context, input()) : gated.then(() => invoke(call.context, input()));
          } catch (error) {
            return Promise.reject(error);
          }
        },
      };
    });
  });
}
