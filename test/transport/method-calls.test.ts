import { describe, expect, it } from "vitest";
import { Code, ConnectError, createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { EntitlementService, GetPlanRequestSchema } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { peerAddressKey } from "../../src/auth/gates.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { Metrics } from "../../src/platform/metrics.ts";
import { callDeadlineKey } from "../../src/transport/call-lifecycle.ts";
import { methodCalls, type MethodCalls } from "../../src/transport/method-calls.ts";

/** The methods as the grpc-js server and /v1 run them, over an implementation that records its calls. */
function getPlanCalls(options: { interceptors?: Interceptor[]; gate?: (context: HandlerContext) => void; getPlan?: (context: HandlerContext) => Promise<object> } = {}) {
  const metrics = new Metrics();
  const seen: HandlerContext[] = [];
  const implementation = {
    getPlan: async (_: unknown, context: HandlerContext) => {
      seen.push(context);
      return options.getPlan === undefined ? { plan: { code: "free" } } : options.getPlan(context);
    },
  };
  const methods = methodCalls([{ service: EntitlementService, implementation, requestGate: options.gate }], {
    interceptors: options.interceptors ?? [],
    logger: createLogger("silent"),
    metrics,
  });
  const calls = methods.find((candidate) => candidate.method.name === "GetPlan") as MethodCalls;
  return { calls, seen, metrics };
}

const input = () => create(GetPlanRequestSchema, { userId: "u" });

describe("methodCalls", () => {
  it("keeps a sane request id, makes one otherwise, and gives the call its peer address", async () => {
    const { calls, seen } = getPlanCalls();
    const kept = calls.start({ protocolName: "grpc", header: { "x-request-id": "req-1" }, peerAddress: "10.0.0.1", deadlineAt: undefined });
    const made = calls.start({ protocolName: "grpc", header: { "x-request-id": "bad id with spaces" }, peerAddress: undefined, deadlineAt: undefined });
    expect(kept.requestId).toBe("req-1");
    expect(made.requestId).toMatch(/^[0-9a-f-]{36}$/);
    await calls.unary(kept, input);
    expect(seen[0]?.values.get(peerAddressKey)).toBe("10.0.0.1");
    expect(seen[0]?.requestHeader.get("x-request-id")).toBe("req-1");
  });

  it("carries the deadline as a value the interceptors read, and aborts the call when it passes", async () => {
    const deadlines: (number | undefined)[] = [];
    const recordDeadline: Interceptor = (next) => (request) => {
      deadlines.push(request.contextValues.get(callDeadlineKey));
      return next(request);
    };
    const { calls } = getPlanCalls({
      interceptors: [recordDeadline],
      getPlan: (context) => new Promise((_, reject) => context.signal.addEventListener("abort", () => reject(context.signal.reason))),
    });
    const deadlineAt = Date.now() + 50;
    const call = calls.start({ protocolName: "grpc", header: {}, peerAddress: undefined, deadlineAt });
    const error = await calls.unary(call, input).catch((e: unknown) => ConnectError.from(e));
    call.finish(error as ConnectError);
    expect(deadlines).toEqual([deadlineAt]);
    expect(error).toMatchObject({ code: Code.DeadlineExceeded });
  });

  it("aborts a call whose caller cancels before the answer, but not one already answered", async () => {
    const { calls, seen } = getPlanCalls();
    const answered = calls.start({ protocolName: "grpc", header: {}, peerAddress: undefined, deadlineAt: undefined });
    await calls.unary(answered, input);
    answered.finish();
    answered.cancel();
    expect(seen[0]?.signal.aborted).toBe(false);
    const cancelled = calls.start({ protocolName: "grpc", header: {}, peerAddress: undefined, deadlineAt: undefined });
    cancelled.cancel();
    expect(cancelled.context.signal.reason).toMatchObject({ code: Code.Canceled });
  });

  it("runs the gate before the implementation, and reports each call once with its code", async () => {
    const { calls, seen, metrics } = getPlanCalls({
      gate: () => {
        throw new ConnectError("a service token is required", Code.Unauthenticated);
      },
    });
    const call = calls.start({ protocolName: "grpc", header: {}, peerAddress: undefined, deadlineAt: undefined });
    const error = await calls.unary(call, input).catch((e: unknown) => ConnectError.from(e));
    call.finish(error as ConnectError);
    expect(error).toMatchObject({ code: Code.Unauthenticated });
    expect(seen).toEqual([]);
    const counted = (await metrics.rpcRequests.get()).values.find((value) => value.labels.method === "GetPlan");
    expect(counted).toMatchObject({ value: 1, labels: { code: "unauthenticated" } });
  });

  it("runs the interceptors in order around the implementation, which sees what they changed", async () => {
    const order: string[] = [];
    const tagKey = createContextKey<string | undefined>(undefined);
    const outer: Interceptor = (next) => async (request) => {
      order.push("outer");
      const response = await next({ ...request, contextValues: request.contextValues.set(tagKey, "tagged"), header: new Headers({ "x-seen": "yes" }) });
      response.trailer.set("x-outer", "1");
      return response;
    };
    const inner: Interceptor = (next) => async (request) => {
      order.push(`inner ${request.contextValues.get(tagKey)}`);
      const response = await next(request);
      return { ...response, header: new Headers({ "x-inner": "2" }) };
    };
    const { calls, seen } = getPlanCalls({ interceptors: [outer, inner] });
    for (let i = 0; i < 2; i++) {
      const call = calls.start({ protocolName: "grpc", header: {}, peerAddress: undefined, deadlineAt: undefined });
      const output = await calls.unary(call, input);
      expect(output).toMatchObject({ plan: { code: "free" } });
      expect(call.context.responseHeader.get("x-inner")).toBe("2");
      expect(call.context.responseTrailer.get("x-outer")).toBe("1");
    }
    expect(order).toEqual(["outer", "inner tagged", "outer", "inner tagged"]);
    expect(seen.map((context) => [context.values.get(tagKey), context.requestHeader.get("x-seen"), context.method.name])).toEqual([
      ["tagged", "yes", "GetPlan"],
      ["tagged", "yes", "GetPlan"],
    ]);
  });
});
