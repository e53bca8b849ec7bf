import { beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { createEntitlementClient, type EntitlementClient, type LocalEntitlementClient } from "../../clients/node/src/index.ts";
import { freePort } from "../../src/db/embedded.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { spawnService, type ServiceProcess } from "../support/process.ts";
import { JWT_SECRET, SERVICE_TOKEN } from "../support/service.ts";

/** The typed client answering HasFeature and GetPlan from memory, against service processes. */
let database: TestDatabase;
let env: Record<string, string>;
let service: ServiceProcess;
let writer: EntitlementClient;

beforeAll(async () => {
  database = await createTestDatabase();
  env = { ...database.env, SERVICE_TOKENS: SERVICE_TOKEN, JWT_SECRET };
  service = await spawnService(env);
  writer = createEntitlementClient({ baseUrl: `http://127.0.0.1:${service.grpcPort}`, token: SERVICE_TOKEN, timeoutMs: 10_000 });
}, 60_000);

const localClient = (grpcPort: number, local: { maxStalenessMs: number; maxUsers: number }): LocalEntitlementClient =>
  createEntitlementClient({ baseUrl: `http://127.0.0.1:${grpcPort}`, token: SERVICE_TOKEN, timeoutMs: 2000, local });

/** Polls `probe` until it holds (within 10 s). */
async function until(probe: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("a local client", () => {
  it("follows users once asked about, and answers from memory what the service pushes", async () => {
    const client = localClient(service.grpcPort, { maxStalenessMs: 5000, maxUsers: 100 });
    try {
      expect(await client.hasFeature({ userId: "l-ann", feature: "sso" })).toMatchObject({ enabled: false, planCode: "free", revision: 0n });
      await until(() => client.local.size === 1);
      const upgraded = await writer.upgradePlan({ userId: "l-ann", planCode: "enterprise" });
      await until(async () => (await client.hasFeature({ userId: "l-ann", feature: "sso" })).enabled);
      const local = await client.getPlan({ userId: "l-ann" });
      expect(local).toMatchObject({ plan: { code: "enterprise" }, revision: upgraded.revision, subscription: { planCode: "enterprise" } });
      expect(Date.now() - Number(local.asOf!.seconds) * 1000).toBeLessThan(16_000);
      // A feature no plan or override names is off; a malformed one is the service's error to give.
      expect((await client.hasFeature({ userId: "l-ann", feature: "teleport" })).enabled).toBe(false);
      expect(ConnectError.from(await client.hasFeature({ userId: "l-ann", feature: "" }).catch((error: unknown) => error)).code).toBe(Code.InvalidArgument);
      // CheckQuota always asks the service.
      expect((await client.checkQuota({ userId: "l-ann", metric: "jobs" })).quota?.limit).toBeUndefined();
    } finally {
      client.close();
    }
  });

  it("asks the service for a revision newer than it holds, and past what it holds is valid until", async () => {
    const client = localClient(service.grpcPort, { maxStalenessMs: 5000, maxUsers: 100 });
    try {
      await client.hasFeature({ userId: "l-bob", feature: "sso" });
      await until(() => client.local.size === 1);
      const inAMoment = { seconds: BigInt(Math.ceil(Date.now() / 1000) + 2), nanos: 0 };
      const set = await writer.setFeatureOverride({ userId: "l-bob", feature: "sso", enabled: true, reason: "pilot", expiresAt: inAMoment });
      // Asked for the override's revision at once: answered by the service if the push is not in yet.
      expect(await client.hasFeature({ userId: "l-bob", feature: "sso", minRevision: set.revision })).toMatchObject({ enabled: true, revision: set.revision });
      await until(async () => (await client.hasFeature({ userId: "l-bob", feature: "sso" })).enabled);
      // Past valid_until the service answers (the override has lapsed), before any event says so.
      await until(() => Date.now() > Number(inAMoment.seconds) * 1000 + 50);
      expect((await client.hasFeature({ userId: "l-bob", feature: "sso" })).enabled).toBe(false);
    } finally {
      client.close();
    }
  });

  it("keeps at most maxUsers, forgetting the least recently asked about", async () => {
    const client = localClient(service.grpcPort, { maxStalenessMs: 5000, maxUsers: 2 });
    try {
      for (const userId of ["l-1", "l-2", "l-3", "l-4"]) {
        await client.getPlan({ userId });
        await new Promise((resolve) => setTimeout(resolve, 60));
      }
      await until(() => client.local.size === 2);
      expect(client.local.size).toBe(2);
    } finally {
      client.close();
    }
  });

  it("answers from memory while its stream is down for less than maxStalenessMs, then asks the service; resumes when it is back", async () => {
    const grpcPort = await freePort();
    let replica = await spawnService({ ...env, GRPC_PORT: String(grpcPort) });
    const client = localClient(grpcPort, { maxStalenessMs: 1500, maxUsers: 100 });
    try {
      await client.hasFeature({ userId: "l-cid", feature: "sso" });
      await until(() => client.local.size === 1);
      await replica.stop("SIGKILL");
      // Down, within the bound: from memory.
      expect((await client.hasFeature({ userId: "l-cid", feature: "sso" })).enabled).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 1600));
      // Down past the bound: the service is asked, and it is not there.
      expect(ConnectError.from(await client.hasFeature({ userId: "l-cid", feature: "sso" }).catch((error: unknown) => error)).code).toBe(Code.Unavailable);
      // Changed while the client's stream was down; it resumes from its position and catches up.
      await writer.upgradePlan({ userId: "l-cid", planCode: "enterprise" });
      replica = await spawnService({ ...env, GRPC_PORT: String(grpcPort) });
      await until(async () => (await client.hasFeature({ userId: "l-cid", feature: "sso" }).catch(() => ({ enabled: false }))).enabled);
      expect((await client.getPlan({ userId: "l-cid" })).plan?.code).toBe("enterprise");
    } finally {
      client.close();
      await replica.stop();
    }
  }, 60_000);
});
