import type http2 from "node:http2";
import { types } from "node:util";
import type * as grpc from "@grpc/grpc-js";

/**
 * A session's open streams by id in a plain object, in place of the Map Node's HTTP/2 core keeps
 * them in. A busy session's Map moves to a new table every few calls; V8 allocates each new table
 * in the generation of the one it replaces and leaves the entries in the old one. Once a full
 * collection has moved the current table to the old generation, every later one is born there,
 * and each, dead, keeps the streams it held alive through young collections until the next full
 * one (docs/performance.md). Node's core uses get, set, delete, size and forEach.
 */
export class StreamTable<Stream> {
  readonly #byId: Record<number, Stream> = Object.create(null) as Record<number, Stream>;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): Stream | undefined {
    return this.#byId[id];
  }

  set(id: number, stream: Stream): this {
    if (this.#byId[id] === undefined) this.#size += 1;
    this.#byId[id] = stream;
    return this;
  }

  delete(id: number): boolean {
    if (this.#byId[id] === undefined) return false;
    delete this.#byId[id];
    this.#size -= 1;
    return true;
  }

  forEach(visit: (stream: Stream, id: number) => void): void {
    for (const id in this.#byId) visit(this.#byId[id]!, Number(id));
  }
}

type SessionState = { streams: unknown };

/** Node's per-session state (its private `kState`), or undefined where a Node version differs. */
function sessionState(session: http2.ServerHttp2Session): SessionState | undefined {
  const key = Object.getOwnPropertySymbols(session).find((symbol) => symbol.description === "state");
  const state = key === undefined ? undefined : (session as unknown as Record<symbol, unknown>)[key];
  // Node's own Map subclass has no Map.prototype in its chain: instanceof would miss it.
  return typeof state === "object" && state !== null && types.isMap((state as SessionState).streams) ? (state as SessionState) : undefined;
}

/** Moves the session's streams to a StreamTable; a Node that keeps them otherwise is left as it is. */
function useStreamTable(session: http2.ServerHttp2Session): void {
  const state = sessionState(session);
  if (state === undefined) return;
  const table = new StreamTable<unknown>();
  for (const [id, stream] of state.streams as Map<number, unknown>) table.set(id, stream);
  state.streams = table;
}

/**
 * Gives every HTTP/2 session of the server's ports a StreamTable. Call after each bind: it reads
 * grpc-js's HTTP/2 servers (private `http2Servers`, one of the grpc-js internals we touch) and
 * Node's session state; test/transport/grpc/stream-tables.test.ts holds both to account.
 */
export function installStreamTables(server: grpc.Server): void {
  const servers = (server as unknown as { http2Servers?: Map<http2.Http2Server, unknown> }).http2Servers;
  if (servers === undefined) throw new Error("grpc-js no longer has http2Servers: see installStreamTables");
  for (const http2Server of servers.keys()) {
    if (!http2Server.listeners("session").includes(useStreamTable)) http2Server.on("session", useStreamTable);
  }
}
