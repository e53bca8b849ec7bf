import { beforeAll, describe, expect, it } from "vitest";
import { sql } from "slonik";
import { z } from "zod";
import { status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { GrpcTestClient } from "../support/grpc-client.ts";
import { spawnService, type ServiceProcess } from "../support/process.ts";
import { SERVICE_TOKEN } from "../support/service.ts";

/** SIGTERM with calls in flight: they finish, new ones are turned away, the process exits 0. */
let database: TestDatabase;
let service: ServiceProcess;

beforeAll(async () => {
  database = await createTestDatabase();
  service = await spawnService({ ...database.env, SERVICE_TOKENS: SERVICE_TOKEN, SHUTDOWN_TIMEOUT_MS: "5000", LOG_LEVEL: "info" });
}, 60_000);

describe("SIGTERM", () => {
  it("drains in-flight calls, loses nothing and exits 0", async () => {
    const client = new GrpcTestClient(EntitlementService, `127.0.0.1:${service.grpcPort}`);
    const auth = { authorization: `Bearer ${SERVICE_TOKEN}` };
    await client.call(EntitlementService.method.getPlan, { userId: "warm-up" }, auth);
    let stopped: Promise<number | null> | undefined;
    const calls = Array.from({ length: 200 }, (_, i) =>
      client.call(EntitlementService.method.incrementUsage, { userId: "draining", metric: "compute_minutes", amount: 1n, idempotencyKey: `k${i}` }, auth).then(
        () => "ok",
        (error: ServiceError) => GrpcStatus[error.code],
      ),
    );
    // Stop while the calls are being served.
    void calls[0]!.then(() => (stopped = service.stop("SIGTERM")));
    const outcomes = await Promise.all(calls);
    const started = performance.now();
    expect(await stopped).toBe(0);
    expect(performance.now() - started).toBeLessThan(5000);
    client.close();

    const served = outcomes.filter((outcome) => outcome === "ok").length;
    process.stdout.write(`SIGTERM with 200 calls in flight: ${served} served, ${200 - served} turned away\n`);
    expect(served).toBeGreaterThan(0);
    expect(new Set(outcomes.filter((outcome) => outcome !== "ok"))).toSatisfy((codes: Set<string>) => [...codes].every((code) => code === "UNAVAILABLE"));
    const used = await database.pool.maybeOneFirst(
      sql.type(z.object({ used: z.bigint() }))`select used from usage_counters where user_id = 'draining'`,
    );
    expect(used ?? 0n).toBe(BigInt(served));
    // The last line an operator reads: it stopped, and on which signal.
    const lastLine = JSON.parse(service.output().trim().split("\n").at(-1)!) as { msg: string; signal: string };
    expect(lastLine).toMatchObject({ msg: "stopped", signal: "SIGTERM" });
  });
});
