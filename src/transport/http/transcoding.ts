import { hash } from "node:crypto";
import type http from "node:http";
import type http2 from "node:http2";
import {
  create,
  createRegistry,
  fromBinary,
  fromJson,
  getOption,
  hasOption,
  toJson,
  type DescField,
  type DescMessage,
  type DescMethod,
  type JsonObject,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { asConnectError, type MethodCalls } from "../method-calls.ts";
import { http as httpRule } from "../../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../../gen/google/api/http_pb.js";
import { file_google_rpc_error_details } from "../../../gen/google/rpc/error_details_pb.js";
import type { Logger } from "../../platform/logger.ts";
import { encodedOnce } from "../shared-answers.ts";
import { compilePathTemplate, type PathTemplate } from "./path-template.ts";

export type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

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

export type TranscodingOptions = {
  /** The methods: a transcoded call runs its method's gate, interceptors and implementation. */
  readonly methods: readonly MethodCalls[];
  /** RPCs that need no credential: their GET responses may be cached publicly. */
  readonly publicMethods: readonly DescMethod[];
  readonly maxBodyBytes: number;
  readonly logger: Logger;
};

/** HTTP status of each RPC code: the standard mapping of google/rpc/code.proto. */
const HTTP_STATUS_BY_CODE: Readonly<Record<string, number>> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  unauthenticated: 401,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
};

const QUOTA_FAILURE_TYPE = "google.rpc.QuotaFailure";
const PUBLIC_MAX_AGE_SECONDS = 60;
const detailsRegistry = createRegistry(file_google_rpc_error_details);

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

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

function findField(message: DescMessage, name: string): DescField | undefined {
  return message.fields.find((field) => field.name === name || field.jsonName === name);
}

/** A query or path value as the proto3 JSON of the field's type. */
function jsonScalar(field: DescField, value: string, parameter: string): JsonValue {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind;
  if (kind === "map" || (kind === "message" && field.message?.typeName.startsWith("google.protobuf.") !== true)) {
    throw new HttpError(400, "invalid_argument", `"${parameter}" cannot be set from the URL`);
  }
  if (kind === "scalar" && field.scalar === 8 /* bool */) {
    if (value === "true" || value === "false") return value === "true";
    throw new HttpError(400, "invalid_argument", `"${parameter}" must be true or false`);
  }
  // proto3 JSON takes numbers, enums, bytes, well-known types and strings as strings.
  return value;
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
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as JsonValue;
  } catch {
    throw new HttpError(400, "invalid_argument", "the body is not valid JSON");
  }
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

async function requestJson(route: TranscodingRoute, request: NodeRequest, url: URL, pathValues: ReadonlyMap<string, string>, maxBodyBytes: number): Promise<JsonObject> {
  const input = route.calls.method.input;
  let json: JsonObject = {};
  if (route.body !== "") {
    const body = await readBody(request, maxBodyBytes);
    if (route.body === "*") {
      if (body !== undefined && !isObject(body)) {
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
  for (const [parameter, value] of url.searchParams) {
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
function callHeader(request: NodeRequest): Record<string, string> {
  const header: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    header[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return header;
}

/** Error details as proto3 JSON `Any`s: `{"@type": "type.googleapis.com/google.rpc.QuotaFailure", ...}`. */
function detailsJson(error: ConnectError): JsonValue[] {
  const any = (typeName: string, json: JsonValue): JsonValue => ({
    "@type": `type.googleapis.com/${typeName}`,
    ...(isObject(json) ? json : { value: json }),
  });
  return error.details.map((detail) => {
    if ("desc" in detail) return any(detail.desc.typeName, toJson(detail.desc, create(detail.desc, detail.value)));
    const desc = detailsRegistry.getMessage(detail.type);
    return any(detail.type, desc === undefined ? base64Encode(detail.value) : toJson(desc, fromBinary(desc, detail.value)));
  });
}

/** Bodies and ETags of the shared answers by route, made once each. */
const sharedBodies = new WeakMap<object, Map<unknown, string>>();
const sharedEtags = new WeakMap<object, Map<unknown, string>>();

/** The response's JSON: the whole message, or the field the rule's `response_body` names. */
function responseBody(route: TranscodingRoute, output: Message): string {
  return encodedOnce(sharedBodies, output, route, () => encodeBody(route, output));
}

function encodeBody(route: TranscodingRoute, output: Message): string {
  const outputJson = toJson(route.calls.method.output, output, { alwaysEmitImplicit: true });
  if (route.responseBody === "") return JSON.stringify(outputJson);
  const field = findField(route.calls.method.output, route.responseBody);
  return JSON.stringify(field === undefined || !isObject(outputJson) ? null : (outputJson[field.jsonName] ?? null));
}

/**
 * Answers ready but not yet written. Each write to a socket can wake the peer's process, and on
 * a busy server a wakeup per answer cost a fifth of a call's CPU; answers finished in one turn
 * of the event loop are written together at its end, so the peer is woken once a batch rather
 * than once an answer (HTTP/2 does the same for its frames). When the last turn finished at most
 * one answer, the first answer of a turn is written at once: there is nothing to batch it with,
 * and waiting for the turn's end cost a lone caller 15% of its calls. Ending a response whose
 * caller already left writes nothing.
 */
const unsent: { readonly response: NodeResponse; readonly body: string | undefined }[] = [];
let answersThisTurn = 0;
let answersLastTurn = 0;

function write(response: NodeResponse, body: string | undefined): void {
  try {
    if (body === undefined) response.end();
    else response.end(body);
  } catch {
    // Headers are checked as they are set, so this is not expected; if it happens, the one
    // caller loses its connection rather than the rest of the batch their answers.
    response.destroy();
  }
}

function endTurn(): void {
  answersLastTurn = answersThisTurn;
  answersThisTurn = 0;
  for (const { response, body } of unsent.splice(0)) write(response, body);
}

function send(response: NodeResponse, status: number, headers: Record<string, string>, body: string | undefined): void {
  response.statusCode = status;
  for (const [name, value] of Object.entries(headers)) response.setHeader(name, value);
  answersThisTurn += 1;
  if (answersThisTurn === 1) {
    setImmediate(endTurn);
    if (answersLastTurn <= 1) {
      write(response, body);
      return;
    }
  }
  unsent.push({ response, body });
}

function sendError(response: NodeResponse, error: HttpError, details: JsonValue[] = []): void {
  const headers: Record<string, string> = { "content-type": "application/json", "cache-control": "no-store", ...error.headers };
  if (error.status === 401) headers["www-authenticate"] = "Bearer";
  send(response, error.status, headers, JSON.stringify({ code: error.code, message: error.message, details }));
}

/** The ETag of an answer's body (`body` is `output`'s on `route`). */
function etagOf(route: TranscodingRoute, output: Message, body: string): string {
  return encodedOnce(sharedEtags, output, route, () => `"${hash("sha256", body, "base64url").slice(0, 27)}"`);
}

/** The request message from its JSON; a value of the wrong type is the caller's error. */
function requestMessage(desc: DescMessage, json: JsonObject): Message {
  try {
    return fromJson(desc, json);
  } catch (error) {
    throw new ConnectError(`parse JSON: ${(error as Error).message}`, Code.InvalidArgument);
  }
}

/** The HTTP status of an RPC error. */
function httpStatusOf(error: ConnectError): number {
  const code = codeToString(error.code);
  // The system we replace answered quota exhaustion on public endpoints with 402.
  if (error.code === Code.ResourceExhausted && error.details.some((detail) => ("desc" in detail ? detail.desc.typeName : detail.type) === QUOTA_FAILURE_TYPE)) {
    return 402;
  }
  return HTTP_STATUS_BY_CODE[code] ?? 500;
}

/**
 * The /v1 HTTP/JSON layer: routes built from the google.api.http annotations of every registered
 * RPC. A request becomes a call of the RPC's method with the gate, interceptors, request ids, log
 * line and metrics of every other protocol (calls.ts), without a detour through another
 * protocol's encoding; responses are proto3 canonical JSON, errors `{code, message, details}`
 * with the standard HTTP status. Unknown paths are 404, a wrong method 405 with `Allow`, bodies
 * over the limit 413.
 */
export function createTranscodingHandler(options: TranscodingOptions) {
  const routes = transcodingRoutes(options.methods);
  const publicMethods = new Set(options.publicMethods);

  async function handle(request: NodeRequest, response: NodeResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://localhost");
    const matching: { route: TranscodingRoute; values: ReadonlyMap<string, string> }[] = [];
    for (const route of routes) {
      const values = route.path.match(url.pathname);
      if (values !== undefined) matching.push({ route, values });
    }
    if (matching.length === 0) {
      throw new HttpError(404, "not_found", `no route for ${url.pathname}`);
    }
    const method = request.method === "HEAD" ? "GET" : (request.method ?? "GET");
    const found = matching.find(({ route }) => route.httpMethod === method);
    if (found === undefined) {
      const allowed = new Set(matching.map(({ route }) => route.httpMethod));
      if (allowed.has("GET")) allowed.add("HEAD");
      throw new HttpError(405, "unimplemented", `${request.method} is not allowed on ${url.pathname}`, { allow: [...allowed].join(", ") });
    }
    const { route, values } = found;
    if (Number(request.headers["content-length"] ?? "0") > options.maxBodyBytes) {
      throw new HttpError(413, "resource_exhausted", `the body is over ${options.maxBodyBytes} bytes`);
    }
    const json = await requestJson(route, request, url, values, options.maxBodyBytes);
    const { calls } = route;
    const call = calls.start({ protocolName: "http", header: callHeader(request), peerAddress: request.socket.remoteAddress, deadlineAt: undefined });
    response.once("close", call.cancel);
    response.setHeader("x-request-id", call.requestId);
    let output: Message;
    let body: string;
    try {
      // Encoding the response is part of the call: a response that cannot be encoded is answered
      // (internal) and logged like any other failed call.
      output = await calls.unary(call, () => requestMessage(calls.method.input, json));
      body = responseBody(route, output);
    } catch (error) {
      const connectError = asConnectError(error, options.logger);
      sendError(response, new HttpError(httpStatusOf(connectError), codeToString(connectError.code), connectError.rawMessage), detailsJson(connectError));
      call.finish(connectError);
      return;
    }
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (method === "GET" && publicMethods.has(calls.method)) {
      const etag = etagOf(route, output, body);
      headers.etag = etag;
      headers["cache-control"] = `public, max-age=${PUBLIC_MAX_AGE_SECONDS}`;
      const ifNoneMatch = request.headers["if-none-match"];
      if (typeof ifNoneMatch === "string" && ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag)) {
        send(response, 304, headers, undefined);
        call.finish();
        return;
      }
    } else {
      headers["cache-control"] = "private, no-store";
    }
    send(response, 200, headers, request.method === "HEAD" ? undefined : body);
    call.finish();
  }

  return (request: NodeRequest, response: NodeResponse): void => {
    handle(request, response).catch((error: unknown) => {
      if (response.headersSent) {
        response.destroy();
        return;
      }
      if (error instanceof HttpError) {
        sendError(response, error);
        return;
      }
      options.logger.error({ err: error, url: request.url }, "transcoding failed");
      sendError(response, new HttpError(500, "internal", "internal error"));
    });
  };
}
