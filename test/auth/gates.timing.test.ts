import { describe, expect, it, vi } from "vitest";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";

const timingSafeEqual = vi.hoisted(() => ({ calls: [] as [number, number][] }));
vi.mock("node:crypto", async (importOriginal) => {
  const crypto = await importOriginal<typeof import("node:crypto")>();
  return {
    ...crypto,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      timingSafeEqual.calls.push([a.byteLength, b.byteLength]);
      return crypto.timingSafeEqual(a, b);
    },
  };
});

const { serviceTokenGate } = await import("../../src/auth/gates.ts");

describe("service token comparison", () => {
  const tokens = ["first-token-0123456789", "second-token-0123456789-longer", "third-token-0123456789"].map((token) => ({ name: undefined, token }));
  /** The comparisons the gate makes for one presented token, and whether it let the call in. */
  const comparisons = (gate: ReturnType<typeof serviceTokenGate>, presented: string) => {
    timingSafeEqual.calls.length = 0;
    const context = createHandlerContext({
      service: EntitlementService,
      method: EntitlementService.method.getPlan,
      protocolName: "connect",
      requestMethod: "POST",
      url: "http://service/entitlements.v1.EntitlementService/GetPlan",
      requestHeader: { authorization: `Bearer ${presented}` },
      contextValues: createContextValues(),
    });
    let admitted = true;
    try {
      gate(context);
    } catch {
      admitted = false;
    }
    return { calls: [...timingSafeEqual.calls], admitted };
  };

  it("is constant-time over fixed-length digests, against every token, with no early exit", () => {
    const gate = serviceTokenGate(tokens);
    for (const presented of ["first-token-0123456789", "x", "a-much-longer-wrong-token-than-any-configured-one"]) {
      expect(comparisons(gate, presented).calls).toEqual(tokens.map(() => [32, 32]));
    }
  });

  it("knows a token it accepted by value, and still compares every other token in full", () => {
    const gate = serviceTokenGate(tokens);
    expect(comparisons(gate, "second-token-0123456789-longer")).toEqual({ calls: tokens.map(() => [32, 32]), admitted: true });
    expect(comparisons(gate, "second-token-0123456789-longer")).toEqual({ calls: [], admitted: true });
    // Same length and prefix as the accepted token: compared in full, and refused.
    for (const presented of ["second-token-0123456789-longeR", "second-token-0123456789", "first-token-0123456789x"]) {
      expect(comparisons(gate, presented)).toEqual({ calls: tokens.map(() => [32, 32]), admitted: false });
    }
  });
});
