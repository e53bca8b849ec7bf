import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ConnectRouterOptions, HandlerContext, Interceptor } from "@connectrpc/connect";
import type { Logger } from "../platform/logger.ts";
import type { Metrics } from "../platform/metrics.ts";
import { callAttributesInterceptor } from "./interceptors/call-attributes.ts";
import { entitlementErrorToConnect, errorMappingInterceptor } from "./interceptors/error-mapping.ts";
import { loadSheddingInterceptor } from "./interceptors/load-shedding.ts";
import { decodeJsonText } from "./well-formed-text.ts";
import { InvalidArgumentError } from "../domain/errors.ts";

/** Largest request message accepted on any protocol, unless configured otherwise. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** A service, its implementation and the gate its callers pass: one list for every server. */
export type ServiceRegistration = {
  readonly service: DescService;
  readonly implementation: object;
  readonly requestGate?: (context: HandlerContext) => void | Promise<void>;
};

/** What the interceptors every call passes through need. */
export type InterceptorDependencies = {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Bounds each call's database work by its deadline (interceptors/deadline.ts). */
  readonly databaseDeadlines: Interceptor;
};

/** The registrations as Connect routes. */
export function routes(registrations: readonly ServiceRegistration[]) {
  return (router: ConnectRouter) => {
    for (const { service, implementation, requestGate } of registrations) {
      router.service(service, implementation, requestGate === undefined ? undefined : { requestGate });
    }
  };
}

/** Connect's decoder of JSON request bodies: ill-formed UTF-8 is refused, naming its field. */
const jsonTextDecoder = {
  decode(bytes?: Uint8Array): string {
    try {
      return decodeJsonText(bytes ?? new Uint8Array());
    } catch (error) {
      throw error instanceof InvalidArgumentError ? entitlementErrorToConnect(error) : error;
    }
  },
};

/** JSON options: a field of the router's options, the text decoder one of connect's JSON serialization. */
const jsonOptions = {
  // JSON clients see every field, "used": "0" included, rather than guessing at defaults.
  alwaysEmitImplicit: true,
  textDecoder: jsonTextDecoder,
};

/** Options of the router that every transport (and the in-memory test transport) shares. */
export function routerOptions(deps: InterceptorDependencies, maxInFlight: number, maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {
  return {
    interceptors: [
      loadSheddingInterceptor(maxInFlight),
      callAttributesInterceptor(deps.metrics),
      errorMappingInterceptor(deps.logger),
      deps.databaseDeadlines,
    ],
    readMaxBytes: maxMessageBytes,
    jsonOptions,
  } satisfies ConnectRouterOptions;
}
