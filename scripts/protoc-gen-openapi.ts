#!/usr/bin/env node
/**
 * A buf plugin (`buf generate` runs it) that writes gen/openapi/v1.openapi.json from the
 * annotated services: the document /v1/openapi.json serves, kept current by CI like all of gen/.
 */
import { create, createFileRegistry } from "@bufbuild/protobuf";
import {
  CodeGeneratorResponse_Feature,
  CodeGeneratorResponseSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { runNodeJs, type Plugin } from "@bufbuild/protoplugin";
import { PUBLIC_SUBSCRIPTION_METHODS } from "../src/services/subscription-service.ts";
import { openApiDocument } from "./openapi.ts";

const plugin: Plugin = {
  name: "protoc-gen-openapi",
  version: "v1",
  run(request) {
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
    const services = request.fileToGenerate.flatMap((name) => registry.getFile(name)?.services ?? []);
    const publicMethods = new Set(PUBLIC_SUBSCRIPTION_METHODS.map((method) => `${method.parent.typeName}.${method.name}`));
    const document = openApiDocument(services, publicMethods);
    return create(CodeGeneratorResponseSchema, {
      supportedFeatures: BigInt(CodeGeneratorResponse_Feature.PROTO3_OPTIONAL),
      file: [{ name: "openapi/v1.openapi.json", content: `${JSON.stringify(document, null, 2)}\n` }],
    });
  },
};

runNodeJs(plugin);
