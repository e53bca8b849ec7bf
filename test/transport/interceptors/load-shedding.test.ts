import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { loadSheddingInterceptor } from "../../../src/transport/interceptors/load-shedding.ts";

type Next = Parameters<ReturnType<typeof loadSheddingInterceptor>>[0];
type Request = Parameters<Next>[0];
type Response = Awaited<ReturnType<Next>>;

const request = {} as Request;
const response = {} as Response;

/** A `next` whose calls wait until the test settles them. */
function pendingCalls() {
  const settle: { resolve(): void; reject(error: Error): void }[] = [];
  const next: Next = () =>
    new Promise<Response>((resolve, reject) => settle.push({ resolve: () => resolve(response), reject }));
  return { next, settle };
}

const outcome = (call: Promise<unknown>) => call.then(() => "ok", (error: unknown) => ConnectError.from(error).code);

describe("loadSheddingInterceptor", () => {
  it("refuses calls past the bound at once with unavailable, and frees a slot as each call ends, answered or failed", async () => {
    const { next, settle } = pendingCalls();
    const call = loadSheddingInterceptor(2)(next);
    const first = outcome(call(request));
    const second = outcome(call(request));
    expect(await outcome(call(request))).toBe(Code.Unavailable);
    settle[0]!.resolve();
    expect(await first).toBe("ok");
    const third = outcome(call(request));
    expect(await outcome(call(request))).toBe(Code.Unavailable);
    settle[1]!.reject(new ConnectError("no", Code.NotFound));
    expect(await second).toBe(Code.NotFound);
    const fourth = outcome(call(request));
    expect(settle).toHaveLength(4);
    settle[2]!.resolve();
    settle[3]!.resolve();
    expect([await third, await fourth]).toEqual(["ok", "ok"]);
  });

  it("frees the slot of a call whose handler throws before it returns a promise", async () => {
    let throwing = true;
    const call = loadSheddingInterceptor(1)((() => {
      if (throwing) throw new ConnectError("at once", Code.Internal);
      return Promise.resolve(response);
    }) as Next);
    expect(await outcome(call(request))).toBe(Code.Internal);
    throwing = false;
    expect(await outcome(call(request))).toBe("ok");
  });
});
