import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { toConnectError } from "../../../src/transport/interceptors/error-mapping.ts";
import { createLogger } from "../../../src/platform/logger.ts";
import { ConnectionAcquireTimeoutError } from "../../../src/db/acquire-timeout.ts";

const logger = createLogger("silent");

describe("toConnectError", () => {
  it.each([
    ["a reset connection", Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" })],
    ["a refused connection", Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })],
    ["a pooled client being destroyed", new Error("Client is pending destroy.")],
    ["a terminated connection", new Error("Connection terminated unexpectedly")],
    ["no pool connection free in time", new ConnectionAcquireTimeoutError(2000)],
  ])("maps %s to unavailable", (_, error) => {
    const mapped = toConnectError(error, logger);
    expect(mapped.code).toBe(Code.Unavailable);
    expect(mapped.rawMessage).not.toContain("5432");
  });

  it("keeps ConnectErrors as they are", () => {
    const error = new ConnectError("nope", Code.PermissionDenied);
    expect(toConnectError(error, logger)).toBe(error);
  });

  it("sends anything else as a bare internal", () => {
    const mapped = toConnectError(new TypeError("cannot read properties of undefined (reading 'secret')"), logger);
    expect(mapped).toMatchObject({ code: Code.Internal, rawMessage: "internal error" });
  });
});
