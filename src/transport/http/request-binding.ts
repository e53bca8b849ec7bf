import { fromJson, ScalarType, type DescEnum, type DescField, type DescMessage, type JsonObject, type JsonValue, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { NodeRequest } from "../node-http.ts";
import { findField, isJsonObject, type TranscodingRoute } from "./bindings.ts";
import { HttpError } from "./http-errors.ts";
import { decodeJsonText, queryParameters } from "../well-formed-text.ts";

/** A query or path value as the proto3 JSON of the field's type. */
function jsonScalar(field: DescField, value: string, parameter: string): JsonValue {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  if (kind === "map" || (kind === "message" && field.message?.typeName.startsWith("google.protobuf.") !== true)) {
    throw new HttpError(400, "invalid_argument", `"${parameter}" cannot be set from the URL`);
  }
  if (kind === "scalar" && field.scalar === ScalarType.BOOL) {
    if (value === "true" || value === "false") return value === "true";
    throw new HttpError(400, "invalid_argument", `"${parameter}" must be true or false`);
  }
  if (kind === "enum" && field.enum !== undefined) return enumName(field.enum, value);
  // proto3 JSON takes numbers, enums, bytes, well-known types and strings as strings.
  return value;
}

/**
 * An enum value from the URL: its full name (`ACCOUNT_STATUS_SUSPENDED`), or the short name a
 * person types (`suspended`, any case), which is the full name without the enum's prefix.
 */
function enumName(desc: DescEnum, value: string): string {
  if (desc.values.some((known) => known.name === value)) return value;
  const zero = desc.values.find((known) => known.number === 0)?.name ?? "";
  const prefix = zero.endsWith("_UNSPECIFIED") ? zero.slice(0, -"UNSPECIFIED".length) : "";
  const full = `${prefix}${value.toUpperCase()}`;
  return desc.values.some((known) => known.name === full) ? full : value;
}

/** Sets `fieldPath` (dot-separated) of a request JSON object from a URL value. */
function setFromUrl(request: JsonObject, message: DescMessage, fieldPath: string, value: string, parameter: string): void {
  const names = fieldPath.split(".");
  let target = request;
  let desc = message;
  for (const [index, name] of names.entries()) {
    const field = findField(desc, name);
    if (field === undefined) {
      throw new HttpError(400, "invalid_argument", `unknown parameter "${parameter}"`);
    }
    if (index < names.length - 1) {
      if (field.fieldKind !== "message") {
        throw new HttpError(400, "invalid_argument", `unknown parameter "${parameter}"`);
      }
      const next = target[field.jsonName];
      target = typeof next === "object" && next !== null && !Array.isArray(next) ? next : (target[field.jsonName] = {});
      desc = field.message;
      continue;
    }
    const json = jsonScalar(field, value, parameter);
    if (field.fieldKind === "list") {
      const list = target[field.jsonName];
      target[field.jsonName] = Array.isArray(list) ? [...list, json] : [json];
    } else if (field.jsonName in target) {
      throw new HttpError(400, "invalid_argument", `"${parameter}" is given more than once`);
    } else {
      target[field.jsonName] = json;
    }
  }
}

async function readBody(request: NodeRequest, maxBytes: number): Promise<JsonValue | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new HttpError(413, "resource_exhausted", `the body is over ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const contentType = String(request.headers["content-type"] ?? "");
  if (!/^application\/json\b/i.test(contentType)) {
    throw new HttpError(415, "invalid_argument", "the body must be application/json");
  }
  const text = decodeJsonText(Buffer.concat(chunks));
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    throw new HttpError(400, "invalid_argument", "the body is not valid JSON");
  }
}

/** The request message's JSON from the path, the query and the body, as the route binds them. */
export async function requestJson(route: TranscodingRoute, request: NodeRequest, url: URL, pathValues: ReadonlyMap<string, string>, maxBodyBytes: number): Promise<JsonObject> {
  const input = route.calls.method.input;
  let json: JsonObject = {};
  if (route.body !== "") {
    const body = await readBody(request, maxBodyBytes);
    if (route.body === "*") {
      if (body !== undefined && !isJsonObject(body)) {
        throw new HttpError(400, "invalid_argument", "the body must be a JSON object");
      }
      json = body ?? {};
    } else if (body !== undefined) {
      const field = findField(input, route.body);
      if (field === undefined) throw new Error(`body field ${route.body} is not in ${input.typeName}`);
      json[field.jsonName] = body;
    }
  }
  for (const [fieldPath, value] of pathValues) {
    setFromUrl(json, input, fieldPath, value, fieldPath);
  }
  for (const [parameter, value] of queryParameters(url.search)) {
    if (route.body === "*") {
      throw new HttpError(400, "invalid_argument", `unknown parameter "${parameter}"`);
    }
    if (route.path.fieldPaths.includes(parameter)) {
      throw new HttpError(400, "invalid_argument", `"${parameter}" is already bound by the path`);
    }
    setFromUrl(json, input, parameter, value, parameter);
  }
  return json;
}

/** The request headers as the call sees them (Node gives them with lower-case names). */
export function callHeader(request: NodeRequest): Record<string, string> {
  const header: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    header[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return header;
}

/** The request message from its JSON; a value of the wrong type is the caller's error. */
export function requestMessage(desc: DescMessage, json: JsonObject): Message {
  try {
    return fromJson(desc, json);
  } catch (error) {
    throw new ConnectError(`parse JSON: ${(error as Error).message}`, Code.InvalidArgument);
  }
}
