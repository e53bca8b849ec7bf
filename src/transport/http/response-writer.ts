import { hash } from "node:crypto";
import { toJson, type JsonValue, type Message } from "@bufbuild/protobuf";
import type { NodeResponse } from "../node-http.ts";
import { encodedOnce } from "../shared-answers.ts";
import { findField, isJsonObject, type TranscodingRoute } from "./bindings.ts";
import type { HttpError } from "./http-errors.ts";

/** Bodies and ETags of the shared answers by route, made once each. */
const sharedBodies = new WeakMap<object, Map<unknown, string>>();
const sharedEtags = new WeakMap<object, Map<unknown, string>>();

/** The response's JSON: the whole message, or the field the rule's `response_body` names. */
export function responseBody(route: TranscodingRoute, output: Message): string {
  return encodedOnce(sharedBodies, output, route, () => encodeBody(route, output));
}

function encodeBody(route: TranscodingRoute, output: Message): string {
  const outputJson = toJson(route.calls.method.output, output, { alwaysEmitImplicit: true });
  if (route.responseBody === "") return JSON.stringify(outputJson);
  const field = findField(route.calls.method.output, route.responseBody);
  return JSON.stringify(field === undefined || !isJsonObject(outputJson) ? null : (outputJson[field.jsonName] ?? null));
}

/**
 * Answers ready but not yet written. Each write to a socket can wake the peer's process, so
 * answers finished in one turn of the event loop are written together at its end: the peer is
 * woken once a batch rather than once an answer (HTTP/2 does the same for its frames). When the
 * last turn finished at most one answer, the first answer of a turn is written at once: there is
 * nothing to batch it with, and waiting would only delay a lone caller. Ending a response whose
 * caller already left writes nothing. What each choice saves: docs/performance.md.
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

export function send(response: NodeResponse, status: number, headers: Record<string, string>, body: string | undefined): void {
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

export function sendError(response: NodeResponse, error: HttpError, details: JsonValue[] = []): void {
  const headers: Record<string, string> = { "content-type": "application/json", "cache-control": "no-store", ...error.headers };
  if (error.status === 401) headers["www-authenticate"] = "Bearer";
  send(response, error.status, headers, JSON.stringify({ code: error.code, message: error.message, details }));
}

/** The ETag of an answer's body (`body` is `output`'s on `route`). */
export function etagOf(route: TranscodingRoute, output: Message, body: string): string {
  return encodedOnce(sharedEtags, output, route, () => `"${hash("sha256", body, "base64url").slice(0, 27)}"`);
}
