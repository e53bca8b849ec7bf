import { describe, expect, it } from "vitest";
import { Code, ConnectError, createContextValues, createHandlerContext } from "@connectrpc/connect";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { bearerToken, callerOf, isLoopbackAddress, isLoopbackHost, peerAddressKey, serviceTokenGate } from "../../src/auth/gates.ts";

describe("bearerToken", () => {
  it("reads the Bearer scheme, case-insensitively", () => {
    expect(bearerToken(new Headers({ authorization: "Bearer abc" }))).toBe("abc");
    expect(bearerToken(new Headers({ authorization: "bearer abc" }))).toBe("abc");
  });

  it("refuses other forms", () => {
    for (const value of ["", "abc", "Basic abc", "Bearer", "Bearer a b", "Token abc", "Bearerabc"]) {
      expect(bearerToken(new Headers({ authorization: value }))).toBeUndefined();
    }
    expect(bearerToken(new Headers())).toBeUndefined();
  });
});

describe("loopback", () => {
  it("recognises loopback addresses only", () => {
    for (const address of ["127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1"]) {
      expect(isLoopbackAddress(address)).toBe(true);
    }
    for (const address of ["10.0.0.1", "::ffff:10.0.0.1", "0.0.0.0", "::", undefined, "127.evil.example"]) {
      expect(isLoopbackAddress(address)).toBe(false);
    }
    expect(isLoopbackHost("localhost")).toBe(true);
    expect(isLoopbackHost("0.0.0.0")).toBe(false);
  });
});

describe("serviceTokenGate", () => {
  const context = (peer: string, authorization?: string) =>
    createHandlerContext({
      service: EntitlementService,
      method: EntitlementService.method.getPlan,
      protocolName: "connect",
      requestMethod: "POST",
      url: "http://service/entitlements.v1.EntitlementService/GetPlan",
      requestHeader: authorization === undefined ? {} : { authorization },
      contextValues: createContextValues().set(peerAddressKey, peer),
    });
  const refusal = (run: () => void) => {
    try {
      run();
    } catch (error) {
      return ConnectError.from(error).code;
    }
    return undefined;
  };

  it("without tokens, lets in loopback callers only", () => {
    const gate = serviceTokenGate([]);
    expect(refusal(() => gate(context("127.0.0.1")))).toBeUndefined();
    expect(refusal(() => gate(context("::1")))).toBeUndefined();
    expect(refusal(() => gate(context("192.0.2.10")))).toBe(Code.Unauthenticated);
  });

  it("with tokens, requires one from every caller, loopback included", () => {
    const gate = serviceTokenGate([
      { name: undefined, token: "first-token-0123456789" },
      { name: "billing", token: "second-token-0123456789" },
    ]);
    expect(refusal(() => gate(context("127.0.0.1")))).toBe(Code.Unauthenticated);
    expect(refusal(() => gate(context("127.0.0.1", "Bearer wrong-token-0123456789")))).toBe(Code.Unauthenticated);
    expect(refusal(() => gate(context("192.0.2.10", "Bearer second-token-0123456789")))).toBeUndefined();
    expect(refusal(() => gate(context("192.0.2.10", "Bearer first-token-0123456789")))).toBeUndefined();
  });

  it("names the caller as audit events will: the token's name, or service for an unnamed one", () => {
    const gate = serviceTokenGate([
      { name: undefined, token: "first-token-0123456789" },
      { name: "billing", token: "second-token-0123456789" },
    ]);
    for (const [token, actor] of [
      ["second-token-0123456789", "service:billing"],
      ["first-token-0123456789", "service"],
      // Known by value the second time: the same actor.
      ["second-token-0123456789", "service:billing"],
    ] as const) {
      const called = context("192.0.2.10", `Bearer ${token}`);
      gate(called);
      expect(callerOf(called)).toBe(actor);
    }
    const local = context("127.0.0.1");
    serviceTokenGate([])(local);
    expect(callerOf(local)).toBe("service:loopback");
  });
});
