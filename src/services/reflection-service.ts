import { toBinary, type DescExtension, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import type { ServerReflection as ServerReflectionV1, ServerReflectionRequest as RequestV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type {
  ServerReflection as ServerReflectionV1alpha,
  ServerReflectionRequest as RequestV1alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

type Request = RequestV1 | RequestV1alpha;

/**
 * What reflection tells about the served services: their files (with every dependency), symbols
 * and extensions, from the protobuf-es descriptors the server was built with. The maintained
 * reflection packages serve @grpc/grpc-js servers only; the protocol itself is this small.
 */
export class ReflectionIndex {
  readonly #services: readonly string[];
  readonly #files = new Map<string, DescFile>();
  readonly #symbols = new Map<string, DescFile>();
  readonly #extensions = new Map<string, DescExtension[]>();
  readonly #serialized = new Map<DescFile, Uint8Array>();

  constructor(services: readonly DescService[]) {
    this.#services = services.map((service) => service.typeName).sort();
    for (const service of services) this.#addFile(service.file);
  }

  #addFile(file: DescFile): void {
    if (this.#files.has(file.name)) return;
    this.#files.set(file.name, file);
    const addMessage = (message: DescMessage) => {
      this.#symbols.set(message.typeName, file);
      message.nestedMessages.forEach(addMessage);
      message.nestedEnums.forEach((nested) => this.#symbols.set(nested.typeName, file));
      message.nestedExtensions.forEach((extension) => this.#addExtension(extension, file));
    };
    file.messages.forEach(addMessage);
    file.enums.forEach((enumeration) => this.#symbols.set(enumeration.typeName, file));
    file.extensions.forEach((extension) => this.#addExtension(extension, file));
    for (const service of file.services) {
      this.#symbols.set(service.typeName, file);
      service.methods.forEach((method) => this.#symbols.set(`${service.typeName}.${method.name}`, file));
    }
    file.dependencies.forEach((dependency) => this.#addFile(dependency));
  }

  #addExtension(extension: DescExtension, file: DescFile): void {
    this.#symbols.set(extension.typeName, file);
    const extended = this.#extensions.get(extension.extendee.typeName) ?? [];
    extended.push(extension);
    this.#extensions.set(extension.extendee.typeName, extended);
  }

  /** The file and, transitively, every file it imports, each serialized once. */
  #fileDescriptors(file: DescFile): Uint8Array[] {
    const seen = new Set<DescFile>();
    const visit = (current: DescFile) => {
      if (seen.has(current)) return;
      seen.add(current);
      current.dependencies.forEach(visit);
    };
    visit(file);
    return [...seen].map((current) => {
      let bytes = this.#serialized.get(current);
      if (bytes === undefined) {
        bytes = toBinary(FileDescriptorProtoSchema, current.proto);
        this.#serialized.set(current, bytes);
      }
      return bytes;
    });
  }

  /** The response to one reflection request (a plain init, the same for v1 and v1alpha). */
  answer<R extends Request>(request: R) {
    const found = (file: DescFile | undefined, what: string) =>
      file === undefined
        ? { case: "errorResponse" as const, value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } }
        : { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: this.#fileDescriptors(file) } };
    const messageResponse = (() => {
      const { case: kind, value } = request.messageRequest;
      switch (kind) {
        case "fileByFilename":
          return found(this.#files.get(value), `file ${value}`);
        case "fileContainingSymbol":
          return found(this.#symbols.get(value), `symbol ${value}`);
        case "fileContainingExtension": {
          const extension = this.#extensions.get(value.containingType)?.find((e) => e.number === value.extensionNumber);
          return found(extension?.file, `extension ${value.extensionNumber} of ${value.containingType}`);
        }
        case "allExtensionNumbersOfType":
          return {
            case: "allExtensionNumbersResponse" as const,
            value: { baseTypeName: value, extensionNumber: (this.#extensions.get(value) ?? []).map((e) => e.number) },
          };
        case "listServices":
          return { case: "listServicesResponse" as const, value: { service: this.#services.map((name) => ({ name })) } };
        default:
          return { case: "errorResponse" as const, value: { errorCode: Code.InvalidArgument, errorMessage: "empty request" } };
      }
    })();
    return { validHost: request.host, originalRequest: request, messageResponse };
  }
}

/** grpc.reflection.v1.ServerReflection. */
export class ReflectionV1ServiceImpl implements ServiceImpl<typeof ServerReflectionV1> {
  readonly #index: ReflectionIndex;

  constructor(index: ReflectionIndex) {
    this.#index = index;
  }

  async *serverReflectionInfo(requests: AsyncIterable<RequestV1>) {
    for await (const request of requests) yield this.#index.answer(request);
  }
}

/** grpc.reflection.v1alpha.ServerReflection, for older clients (grpcurl, Postman). */
export class ReflectionV1alphaServiceImpl implements ServiceImpl<typeof ServerReflectionV1alpha> {
  readonly #index: ReflectionIndex;

  constructor(index: ReflectionIndex) {
    this.#index = index;
  }

  async *serverReflectionInfo(requests: AsyncIterable<RequestV1alpha>) {
    for await (const request of requests) yield this.#index.answer(request);
  }
}
