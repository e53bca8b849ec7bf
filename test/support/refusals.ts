import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "vitest";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";

/** The ConnectError a call fails with; the test fails when the call succeeds. */
export async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(() => undefined, (e: unknown) => e);
  expect(error, "the call should fail").toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

/** Expects `invalid_argument` whose google.rpc.BadRequest names exactly `field`. */
export async function expectInvalid(call: Promise<unknown>, field: string): Promise<void> {
  const error = await refusal(call);
  expect(error.code).toBe(Code.InvalidArgument);
  expect(error.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field)).toEqual([field]);
}
