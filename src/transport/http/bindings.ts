import { getOption, hasOption, type DescField, type DescMessage, type DescMethod, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { http as httpRule } from "../../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../../gen/google/api/http_pb.js";
import type { MethodCalls } from "../method-calls.ts";
import { compilePathTemplate, type PathTemplate } from "./path-template.ts";

/** One HTTP binding of an RPC, read from its google.api.http annotation. */
export type TranscodingRoute = {
  readonly httpMethod: string;
  readonly path: PathTemplate;
  readonly calls: MethodCalls;
  /** "" (no body), "*" (the whole request) or the request field the body fills. */
  readonly body: string;
  /** "" (the whole response) or the response field sent as the body. */
  readonly responseBody: string;
};

/** One HTTP binding of an RPC, as its google.api.http annotation declares it. */
export type HttpBinding = {
  readonly httpMethod: string;
  readonly template: string;
  readonly body: string;
  readonly responseBody: string;
};

function rulesOf(rule: HttpRule): HttpRule[] {
  return [rule, ...rule.additionalBindings.flatMap(rulesOf)];
}

function bindingOf(rule: HttpRule): HttpBinding | undefined {
  const binding = (httpMethod: string, template: string) => ({ httpMethod, template, body: rule.body, responseBody: rule.responseBody });
  switch (rule.pattern.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      return binding(rule.pattern.case.toUpperCase(), rule.pattern.value);
    case "custom":
      return binding(rule.pattern.value.kind.toUpperCase(), rule.pattern.value.path);
    default:
      return undefined;
  }
}

/** Every HTTP binding of an RPC: its google.api.http rule and the rule's additional bindings. */
export function httpBindings(method: DescMethod): HttpBinding[] {
  if (!hasOption(method, httpRule)) return [];
  return rulesOf(getOption(method, httpRule)).flatMap((rule) => bindingOf(rule) ?? []);
}

/** Every annotated binding of the unary methods. Built once, at start. */
export function transcodingRoutes(methods: readonly MethodCalls[]): TranscodingRoute[] {
  return methods.flatMap((calls) => {
    if (calls.method.methodKind !== "unary") return [];
    return httpBindings(calls.method).map((binding) => ({
      httpMethod: binding.httpMethod,
      path: compilePathTemplate(binding.template),
      calls,
      body: binding.body,
      responseBody: binding.responseBody,
    }));
  });
}

export function findField(message: DescMessage, name: string): DescField | undefined {
  return message.fields.find((field) => field.name === name || field.jsonName === name);
}

export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
