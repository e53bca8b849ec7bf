import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { composeService, type ComposedService } from "../../src/compose.ts";
import { sql } from "slonik";
import { sequenceEntitlementEvents } from "../../src/db/entitlement-events.ts";
import type { DeliveryState } from "../../src/db/webhook-deliveries.ts";
import { eraseLapsedSecrets } from "../../src/db/webhook-endpoints.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { inMemoryClient, TEST_SETTINGS } from "../support/service.ts";
import { startWebhookReceiver, verifiesWith } from "../support/webhook-receiver.ts";

let database: TestDatabase;
let service: ComposedService;
const clock = new TestClock("2026-03-15T12:00:00Z");
const client = () => inMemoryClient(service.served);

beforeAll(async () => {
  database = await createTestDatabase();
  const settings = { ...TEST_SETTINGS, webhookRetryDelaysMs: [1000, 5000, 60_000], webhookRetryForMs: 10 * 60_000, webhookTimeoutMs: 300 };
  service = await composeService(settings, database.pool, { clock, logger: createLogger("silent") });
});

// Each test's endpoints go with it, even when it fails: none takes the next test's events.
afterEach(async () => {
  for (const endpoint of await service.webhookEndpoints.list()) {
    if (!endpoint.fromConfiguration) await service.webhookEndpoints.delete("root", endpoint.id);
  }
});

/** Gives the committed events their positions (and deliveries), then attempts what is due. */
async function deliver(): Promise<number> {
  while ((await sequenceEntitlementEvents(database.pool, 1000)) > 0);
  return service.webhooks.deliverDue();
}

const deliveriesOf = async (endpointId: string) =>
  (await service.webhookEndpoints.deliveries({ endpointId, pageSize: 100, pageToken: "" })).deliveries;

describe("webhooks", () => {
  it("POST each event of the endpoint's types, signed so the library's verifier accepts it", async () => {
    const receiver = await startWebhookReceiver();
    const { endpoint, secret } = await service.webhookEndpoints.create("root", receiver.url, ["entitlements.plan_changed"]);
    receiver.useSecret(secret);
    expect(secret).toMatch(/^whsec_/);
    await client().upgradePlan({ userId: "hook-ann", planCode: "pro" });
    await client().setFeatureOverride({ userId: "hook-ann", feature: "sso", enabled: true, reason: "pilot" });
    expect(await deliver()).toBe(1);
    expect(receiver.received).toHaveLength(1);
    const [post] = receiver.received;
    expect(post?.verified).toBe(true);
    expect(post?.body).toMatchObject({ type: "entitlements.plan_changed", data: { type: "entitlements.plan_changed", userId: "hook-ann", revision: "1" } });
    expect(post?.id).toBe(post?.body.data.id);
    expect((post?.body.data.entitlements as { plan: { code: string } }).plan.code).toBe("pro");
    expect(await deliveriesOf(endpoint.id)).toMatchObject([{ eventType: "entitlements.plan_changed", attempts: 1, lastStatus: 200 }]);
    await service.webhookEndpoints.delete("root", endpoint.id);
  });

  it("retry a failed delivery on the schedule, and send an account's events in order meanwhile", async () => {
    const receiver = await startWebhookReceiver({ answer: (index) => (index < 2 ? 503 : 200) });
    const { endpoint, secret } = await service.webhookEndpoints.create("root", receiver.url, []);
    receiver.useSecret(secret);
    await client().upgradePlan({ userId: "hook-bob", planCode: "pro" });
    await client().upgradePlan({ userId: "hook-bob", planCode: "enterprise" });
    expect(await deliver()).toBe(1);
    // The second event waits for the first: an account's events go out in order.
    expect(await deliver()).toBe(0);
    clock.advance(1000);
    expect(await deliver()).toBe(1);
    clock.advance(4000);
    expect(await deliver()).toBe(0);
    clock.advance(1000);
    expect(await deliver()).toBe(2);
    expect(receiver.received.map((post) => [post.status, (post.body.data as { revision: string }).revision])).toEqual([
      [503, "1"],
      [503, "1"],
      [200, "1"],
      [200, "2"],
    ]);
    const deliveries = await deliveriesOf(endpoint.id);
    expect(deliveries.map((delivery) => [delivery.attempts, delivery.lastStatus, delivery.deliveredAt !== null])).toEqual([
      [1, 200, true],
      [3, 200, true],
    ]);
    await service.webhookEndpoints.delete("root", endpoint.id);
  });

  it("give a delivery up once its retries run out, saying why the last attempt failed", async () => {
    const receiver = await startWebhookReceiver({ answer: () => new Promise((resolve) => setTimeout(() => resolve(200), 1000)) });
    const { endpoint } = await service.webhookEndpoints.create("root", receiver.url, ["account.suspended"]);
    await client().getPlan({ userId: "hook-carl" });
    await client().incrementUsage({ userId: "hook-carl", metric: "api_calls", amount: 1n });
    await service.administration.suspend("root", "hook-carl", "fraud");
    let attempts = 0;
    for (let round = 0; round < 20 && (await deliveriesOf(endpoint.id))[0]?.abandonedAt == null; round++) {
      attempts += await deliver();
      clock.advance(60_000);
    }
    const [delivery] = await deliveriesOf(endpoint.id);
    expect(delivery).toMatchObject({ lastStatus: null, lastError: "no answer within 300 ms", deliveredAt: null });
    expect(delivery?.abandonedAt).not.toBeNull();
    // 1 s, 5 s, then every minute, for 10 minutes after the first attempt.
    expect(attempts).toBe(delivery?.attempts);
    expect(attempts).toBeGreaterThanOrEqual(10);
    expect(attempts).toBeLessThanOrEqual(13);
    await service.webhookEndpoints.delete("root", endpoint.id);
  });

  it("send again what was given up on, since a time or all of it, in order, its retries started over", async () => {
    let up = false;
    const receiver = await startWebhookReceiver({ answer: () => (up ? 200 : 503) });
    const { endpoint } = await service.webhookEndpoints.create("root", receiver.url, ["entitlements.plan_changed"]);
    await client().upgradePlan({ userId: "hook-eve", planCode: "pro" });
    await client().upgradePlan({ userId: "hook-eve", planCode: "enterprise" });
    await deliver();
    for (let round = 0; round < 40 && (await deliveriesOf(endpoint.id)).some((delivery) => delivery.abandonedAt === null); round++) {
      await deliver();
      clock.advance(60_000);
    }
    const failed = await deliveriesOf(endpoint.id);
    expect(failed.map((delivery) => delivery.abandonedAt !== null)).toEqual([true, true]);
    const inState = async (state: DeliveryState) =>
      (await service.webhookEndpoints.deliveries({ endpointId: endpoint.id, state, pageSize: 100, pageToken: "" })).deliveries.map((delivery) => delivery.position);
    expect([await inState("failed"), await inState("pending"), await inState("delivered")]).toEqual([failed.map((delivery) => delivery.position), [], []]);
    const [later, earlier] = failed;
    expect(await service.webhookEndpoints.retryFailed("root", endpoint.id, new Date(clock.now().getTime() + 1))).toBe(0);
    // An event past retention is not sent again: nothing would be left to send.
    await database.pool.query(sql.unsafe`delete from entitlement_events where position = ${later!.position}`);
    up = true;
    expect(await service.webhookEndpoints.retryFailed("root", endpoint.id, earlier!.abandonedAt)).toBe(1);
    // This replica's dispatcher is woken at once: no poll, no explicit pass.
    const retried = await vi.waitFor(async () => {
      const found = (await deliveriesOf(endpoint.id)).find((delivery) => delivery.position === earlier!.position);
      expect(found?.deliveredAt).not.toBeNull();
      return found;
    });
    expect(retried).toMatchObject({ lastStatus: 200, attempts: earlier!.attempts + 1 });
    expect([await inState("failed"), await inState("delivered")]).toEqual([[later!.position], [earlier!.position]]);
    expect(receiver.received.at(-1)?.body.data).toMatchObject({ userId: "hook-eve", revision: "1" });
    expect(await service.webhookEndpoints.retryFailed("root", endpoint.id, null)).toBe(0);
    await service.webhookEndpoints.delete("root", endpoint.id);
  });

  it("hold a paused endpoint's deliveries, then send them in order on resume, to the URL it has then", async () => {
    const old = await startWebhookReceiver({ answer: () => 503 });
    const moved = await startWebhookReceiver({ answer: (index) => (index === 0 ? 503 : 200) });
    const { endpoint } = await service.webhookEndpoints.create("root", old.url, ["entitlements.plan_changed"]);
    await client().upgradePlan({ userId: "hook-fay", planCode: "pro" });
    expect(await deliver()).toBe(1);
    const paused = await service.webhookEndpoints.update("root", endpoint.id, { paused: true });
    expect(paused.pausedAt).toEqual(clock.now());
    await client().upgradePlan({ userId: "hook-fay", planCode: "enterprise" });
    clock.advance(1000);
    expect(await deliver()).toBe(0);
    clock.advance(3_600_000);
    // Pausing again keeps when it was paused; the URL changes under the pause.
    expect((await service.webhookEndpoints.update("root", endpoint.id, { paused: true, url: moved.url })).pausedAt).toEqual(paused.pausedAt);
    clock.advance(3_600_000);
    const resumed = await service.webhookEndpoints.update("root", endpoint.id, { paused: false });
    expect(resumed).toMatchObject({ url: moved.url, pausedAt: null });
    // The resume woke this replica's dispatcher: the first delivery was tried at once (503), and
    // is tried again though two hours passed since its first attempt: the pause used no retries.
    await vi.waitFor(() => expect(moved.received).toHaveLength(1));
    // Its second failure: tried again after 5 s.
    clock.advance(5000);
    expect(await deliver()).toBe(2);
    expect(old.received.map((post) => post.status)).toEqual([503]);
    expect(moved.received.map((post) => [post.status, (post.body.data as { revision: string }).revision])).toEqual([
      [503, "1"],
      [200, "1"],
      [200, "2"],
    ]);
    await service.webhookEndpoints.delete("root", endpoint.id);
  });

  it("send a signed test message on request, paused or not, recording no delivery, and say how it went", async () => {
    const receiver = await startWebhookReceiver({ answer: (index) => (index === 0 ? 204 : 500) });
    const { endpoint, secret } = await service.webhookEndpoints.create("root", receiver.url, []);
    receiver.useSecret(secret);
    await service.webhookEndpoints.update("root", endpoint.id, { paused: true });
    const sent = await service.webhookEndpoints.test("root", endpoint.id);
    expect(sent).toMatchObject({ delivered: true, status: 204, error: null });
    expect(receiver.received).toMatchObject([{ id: sent.messageId, verified: true, body: { type: "webhook.test", data: { endpointId: endpoint.id } } }]);
    expect(await service.webhookEndpoints.test("root", endpoint.id)).toMatchObject({ delivered: false, status: 500, error: "answered 500" });
    expect(await deliveriesOf(endpoint.id)).toEqual([]);
    const unreachable = await service.webhookEndpoints.create("root", "http://127.0.0.1:9/nobody", []);
    expect(await service.webhookEndpoints.test("root", unreachable.endpoint.id)).toMatchObject({ delivered: false, status: null, error: expect.stringMatching(/fetch failed|ECONNREFUSED/) });
  });

  it("sign with the new secret and, for the overlap, the replaced one; a rotation without overlap drops it", async () => {
    const receiver = await startWebhookReceiver();
    const { endpoint, secret: first } = await service.webhookEndpoints.create("root", receiver.url, ["entitlements.plan_changed"]);
    const { secret: second, endpoint: rotated } = await service.webhookEndpoints.rotateSecret("root", endpoint.id, 3_600_000);
    expect(second).not.toBe(first);
    expect(rotated.previousSecretExpiresAt).toEqual(new Date(clock.now().getTime() + 3_600_000));
    await client().upgradePlan({ userId: "hook-dan", planCode: "pro" });
    expect(await deliver()).toBe(1);
    clock.advance(3_600_000);
    // The overlap is over: listed as such at once, erased by the sweep.
    const listed = async () => (await service.webhookEndpoints.list()).find((found) => found.id === endpoint.id);
    expect((await listed())?.previousSecretExpiresAt).toBeNull();
    expect(await eraseLapsedSecrets(database.pool, clock.now())).toBe(1);
    expect(await database.pool.oneFirst(sql.unsafe`select count(*) from webhook_endpoints where previous_secret is not null`)).toBe(0n);
    await client().upgradePlan({ userId: "hook-dan", planCode: "enterprise" });
    expect(await deliver()).toBe(1);
    const { secret: third } = await service.webhookEndpoints.rotateSecret("root", endpoint.id, 0);
    await client().upgradePlan({ userId: "hook-dan", planCode: "pro" });
    expect(await deliver()).toBe(1);
    const [during, after, withoutOverlap] = receiver.received;
    expect([first, second, third].map((secret) => verifiesWith(during!, secret))).toEqual([true, true, false]);
    expect([first, second, third].map((secret) => verifiesWith(after!, secret))).toEqual([false, true, false]);
    expect([first, second, third].map((secret) => verifiesWith(withoutOverlap!, secret))).toEqual([false, false, true]);
    await service.webhookEndpoints.delete("root", endpoint.id);
  });

  it("declared by WEBHOOK_URLS are kept in step with it, and cannot be deleted through the API", async () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
    await service.webhookEndpoints.configure(["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"], secret);
    await service.webhookEndpoints.configure(["http://127.0.0.1:9/b", "http://127.0.0.1:9/c"], secret);
    const declared = (await service.webhookEndpoints.list()).filter((endpoint) => endpoint.fromConfiguration);
    expect(declared.map((endpoint) => endpoint.url).sort()).toEqual(["http://127.0.0.1:9/b", "http://127.0.0.1:9/c"]);
    await expect(service.webhookEndpoints.delete("root", declared[0]!.id)).rejects.toThrow(/WEBHOOK_URLS/);
    await expect(service.webhookEndpoints.rotateSecret("root", declared[0]!.id, 0)).rejects.toThrow(/WEBHOOK_SECRET/);
    await expect(service.webhookEndpoints.update("root", declared[0]!.id, { paused: true })).rejects.toThrow(/WEBHOOK_URLS/);
    expect(declared.map((endpoint) => endpoint.previousSecretExpiresAt)).toEqual([null, null]);
    // A new WEBHOOK_SECRET is a rotation: the old one signs for a day more, also after a restart.
    const dayLater = new Date(clock.now().getTime() + 86_400_000);
    await service.webhookEndpoints.configure(["http://127.0.0.1:9/b", "http://127.0.0.1:9/c"], `whsec_${Buffer.alloc(32, 8).toString("base64")}`);
    clock.advance(1000);
    await service.webhookEndpoints.configure(["http://127.0.0.1:9/b", "http://127.0.0.1:9/c"], `whsec_${Buffer.alloc(32, 8).toString("base64")}`);
    const rotated = (await service.webhookEndpoints.list()).filter((endpoint) => endpoint.fromConfiguration);
    expect(rotated.map((endpoint) => endpoint.previousSecretExpiresAt)).toEqual([dayLater, dayLater]);
    await service.webhookEndpoints.configure([], secret);
  });
});
