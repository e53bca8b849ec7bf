import * as grpc from "@grpc/grpc-js";
import {
  create,
  createRegistry,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";

/**
 * A plain @grpc/grpc-js client for a protobuf-es service descriptor: what a backend team on
 * grpc-js (rather than Connect) runs.
 */
export class GrpcTestClient {
  readonly #client: grpc.Client;
  readonly #service: DescService;

  constructor(service: DescService, address: string, credentials = grpc.credentials.createInsecure()) {
    this.#service = service;
    this.#client = new grpc.Client(address, credentials);
  }

  call<I extends DescMessage, O extends DescMessage>(
    method: { readonly name: string; readonly input: I; readonly output: O },
    request: MessageInitShape<I>,
    metadata: Record<string, string> = {},
  ): Promise<MessageShape<O>> {
    const grpcMetadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(metadata)) grpcMetadata.set(key, value);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        `/${this.#service.typeName}/${method.name}`,
        (value: MessageShape<I>) => Buffer.from(toBinary(method.input, value)),
        (bytes: Buffer) => fromBinary(method.output, bytes),
        create(method.input, request),
        grpcMetadata,
        { deadline: Date.now() + 10_000 },
        (error, response) => (error ? reject(error) : resolve(response!)),
      );
    });
  }

  close(): void {
    this.#client.close();
  }
}

const detailsRegistry = createRegistry(file_google_rpc_error_details);

/** The google.rpc error details a grpc-js error carries in grpc-status-details-bin. */
export function grpcErrorDetails(error: grpc.ServiceError) {
  const [bytes] = error.metadata.get("grpc-status-details-bin");
  if (!(bytes instanceof Buffer)) return [];
  return fromBinary(StatusSchema, bytes).details.map((detail) => anyUnpack(detail, detailsRegistry));
}
