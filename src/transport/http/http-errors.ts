import { create, createRegistry, fromBinary, toJson, type JsonValue } from "@bufbuild/protobuf";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { Code, type ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import { file_google_rpc_error_details } from "../../../gen/google/rpc/error_details_pb.js";
import { isJsonObject } from "./bindings.ts";

const QUOTA_FAILURE_TYPE = "google.rpc.QuotaFailure";
const detailsRegistry = createRegistry(file_google_rpc_error_details);

/** A refusal of the /v1 layer itself (no route, bad body), before any RPC runs. */
export class HttpError extends Error {
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

/** Error details as proto3 JSON `Any`s: `{"@type": "type.googleapis.com/google.rpc.QuotaFailure", ...}`. */
export function detailsJson(error: ConnectError): JsonValue[] {
  const any = (typeName: string, json: JsonValue): JsonValue => ({
    "@type": `type.googleapis.com/${typeName}`,
    ...(isJsonObject(json) ? json : { value: json }),
  });
  return error.details.map((detail) => {
    if ("desc" in detail) return any(detail.desc.typeName, toJson(detail.desc, create(detail.desc, detail.value)));
    const desc = detailsRegistry.getMessage(detail.type);
    return any(detail.type, desc === undefined ? base64Encode(detail.value) : toJson(desc, fromBinary(desc, detail.value)));
  });
}

/**
 * The HTTP status of an RPC error: connect's mapping of codes (google/rpc/code.proto's), except
 * quota exhaustion on public endpoints, answered 402 as the system we replace did.
 */
export function httpStatusOf(error: ConnectError): number {
  if (error.code === Code.ResourceExhausted && error.details.some((detail) => ("desc" in detail ? detail.desc.typeName : detail.type) === QUOTA_FAILURE_TYPE)) {
    return 402;
  }
  return codeToHttpStatus(error.code);
}
