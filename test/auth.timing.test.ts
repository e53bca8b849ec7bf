import { describe, expect, it, vi } from "vitest";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import { EntitlementService } from "../gen/entitlements/v1/entitlement_service_pb.js";

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

const { serviceTokenGate } = await import("../src/auth.ts");

describe("service token comparison", () => {
  it("is constant-time over fixed-length digests, against every token, with no early exit", () => {
    const tokens = ["first-token-0123456789", "second-token-0123456789-longer", "third-token-0123456789"];
    const gate = serviceTokenGate(tokens);
    for (const presented of ["first-token-0123456789", "x", "a-much-longer-wrong-token-than-any-configured-one"]) {
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
      try {
        gate(context);
      } catch {
        // Refusals are covered elsewhere; here only the comparisons count.
      }
      expect(timingSafeEqual.calls).toEqual(tokens.map(() => [32, 32]));
    }
  });
});
