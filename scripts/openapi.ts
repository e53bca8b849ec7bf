import { ScalarType, type DescEnum, type DescField, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { getComments } from "@bufbuild/protoplugin";
import { compilePathTemplate } from "../src/transport/http/path-template.ts";
import { httpBindings } from "../src/transport/http/bindings.ts";

type Schema = Record<string, unknown>;

/** How the proto3 JSON mapping writes a scalar. */
function scalarSchema(scalar: ScalarType): Schema {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte" };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "int64", minimum: 0 };
    default:
      return { type: "integer", format: "int32" };
  }
}

const WELL_KNOWN: Record<string, Schema> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]+)?s$" },
};

function description(desc: DescField | DescMessage | DescEnum | DescMethod | DescService): string | undefined {
  const text = getComments(desc).leading?.trim();
  return text === undefined || text === "" ? undefined : text.replace(/\n /g, "\n");
}

function ref(typeName: string): Schema {
  return { $ref: `#/components/schemas/${typeName}` };
}

/**
 * OpenAPI 3.1 for the /v1 HTTP/JSON endpoints, from the same google.api.http annotations the
 * transcoding layer routes by, with the proto comments as descriptions.
 */
export function openApiDocument(services: readonly DescService[], publicMethods: ReadonlySet<string>): Schema {
  const schemas: Record<string, Schema> = {};

  const messageRef = (message: DescMessage): Schema => {
    const known = WELL_KNOWN[message.typeName];
    if (known !== undefined) return known;
    if (schemas[message.typeName] === undefined) {
      schemas[message.typeName] = {};
      const properties: Record<string, Schema> = {};
      for (const field of message.fields) properties[field.jsonName] = fieldSchema(field);
      schemas[message.typeName] = { type: "object", description: description(message), properties, additionalProperties: false };
    }
    return ref(message.typeName);
  };

  const enumRef = (enumeration: DescEnum): Schema => {
    schemas[enumeration.typeName] ??= {
      type: "string",
      description: description(enumeration),
      enum: enumeration.values.map((value) => value.name),
    };
    return ref(enumeration.typeName);
  };

  const valueSchema = (field: DescField): Schema => {
    const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind === "map" ? field.mapKind : field.fieldKind;
    if (kind === "message") return messageRef(field.message!);
    if (kind === "enum") return enumRef(field.enum!);
    return scalarSchema(field.scalar!);
  };

  function fieldSchema(field: DescField): Schema {
    const value = valueSchema(field);
    const schema =
      field.fieldKind === "list"
        ? { type: "array", items: value }
        : field.fieldKind === "map"
          ? { type: "object", additionalProperties: value }
          : value;
    const text = description(field);
    return text === undefined ? schema : { ...schema, description: text };
  }

  const paths: Record<string, Record<string, Schema>> = {};
  for (const service of services) {
    for (const method of service.methods) {
      for (const binding of httpBindings(method)) {
        const template = compilePathTemplate(binding.template);
        const path = binding.template.replace(/\{([^=}]+)(=[^}]*)?\}/g, "{$1}");
        const inPath = new Set(template.fieldPaths);
        const parameters = [
          ...template.fieldPaths.map((name) => {
            const field = method.input.fields.find((candidate) => candidate.name === name);
            return { name, in: "path", required: true, schema: field === undefined ? { type: "string" } : valueSchema(field), description: field && description(field) };
          }),
          ...(binding.body === "*"
            ? []
            : method.input.fields
                .filter((field) => !inPath.has(field.name) && field.name !== binding.body && field.fieldKind !== "map" && field.fieldKind !== "message")
                .map((field) => ({ name: field.name, in: "query", required: false, schema: fieldSchema(field), description: description(field) }))),
        ];
        const bodyField = binding.body === "" || binding.body === "*" ? undefined : method.input.fields.find((field) => field.name === binding.body);
        const responseField =
          binding.responseBody === "" ? undefined : method.output.fields.find((field) => field.name === binding.responseBody);
        const isPublic = publicMethods.has(`${service.typeName}.${method.name}`);
        paths[path] ??= {};
        paths[path][binding.httpMethod.toLowerCase()] = {
          operationId: `${service.name}_${method.name}`,
          tags: [service.name],
          summary: method.name,
          description: description(method),
          parameters,
          ...(binding.body === ""
            ? {}
            : {
                requestBody: {
                  required: true,
                  content: { "application/json": { schema: bodyField === undefined ? messageRef(method.input) : fieldSchema(bodyField) } },
                },
              }),
          responses: {
            "200": {
              description: "OK",
              content: { "application/json": { schema: responseField === undefined ? messageRef(method.output) : fieldSchema(responseField) } },
            },
            default: { description: "An error", content: { "application/json": { schema: ref("Error") } } },
          },
          security: isPublic ? [] : [{ bearerAuth: [] }],
        };
      }
    }
  }

  schemas.Error = {
    type: "object",
    description: "Every error: the RPC code, a message, and google.rpc error details as JSON Any.",
    properties: {
      code: { type: "string", description: 'The RPC code, such as "unauthenticated" or "resource_exhausted".' },
      message: { type: "string" },
      details: { type: "array", items: { type: "object", properties: { "@type": { type: "string" } }, additionalProperties: true } },
    },
    required: ["code", "message", "details"],
  };

  return {
    openapi: "3.1.0",
    info: {
      title: "Entitlement service: public HTTP/JSON API",
      version: "v1",
      description: "Transcoded from the google.api.http annotations of proto/entitlements/v1. Generated: do not edit.",
    },
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
    },
  };
}
