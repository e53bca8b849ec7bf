import { beforeAll, describe, expect, it, vi } from "vitest";
import { ATTEMPTS_PER_ENDPOINT } from "../../src/app/webhook-dispatcher.ts";
import { composeService, type ComposedService } from "../../src/compose.ts";
import { sequenceEntitlementEvents } from "../../src/db/entitlement-events.ts";
import { createLogger } from "../../src/platform/logger.ts";
import { TestClock } from "../support/clock.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";
import { inMemoryClient, TEST_SETTINGS } from "../support/service.ts";
import { startWebhookReceiver } from "../support/webhook-receiver.ts";

let database: TestDatabase;
let service: ComposedService;

beforeAll(async () => {
  database = await createTestDatabase();
  // Answers are waited for long enough that only the test decides when the slow endpoint answers.
  const settings = { ...TEST_SETTINGS, webhookTimeoutMs: 30_000 };
  service = await composeService(settings, database.pool, { clock: new TestClock("2026-03-15T12:00:00Z"), logger: createLogger("silent") });
});

describe("webhook deliveries to several endpoints", () => {
  it("go on to a quick endpoint while a slow one holds its attempts, at most ATTEMPTS_PER_ENDPOINT of them", async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding = 0;
    let mostHeld = 0;
    const slow = await startWebhookReceiver({
      answer: async () => {
        mostHeld = Math.max(mostHeld, (holding += 1));
        await released;
        holding -= 1;
        return 200;
      },
    });
    const quick = await startWebhookReceiver();
    await service.webhookEndpoints.create("root", slow.url, ["entitlements.plan_changed"]);
    await service.webhookEndpoints.create("root", quick.url, ["entitlements.plan_changed"]);
    const users = Array.from({ length: 40 }, (_, index) => `fair-${index}`);
    await Promise.all(users.map((userId) => inMemoryClient(service.served).upgradePlan({ userId, planCode: "pro" })));
    while ((await sequenceEntitlementEvents(database.pool, 1000)) > 0);

    // As a replica runs it: woken by the feed.
    service.webhooks.wake();
    // Every quick delivery is made while the slow endpoint still holds the attempts it was given,
    // and so is one that becomes due meanwhile.
    await vi.waitFor(() => expect(quick.received).toHaveLength(users.length), { timeout: 10_000 });
    expect([slow.received.length, holding]).toEqual([0, ATTEMPTS_PER_ENDPOINT]);
    await inMemoryClient(service.served).upgradePlan({ userId: "fair-late", planCode: "pro" });
    while ((await sequenceEntitlementEvents(database.pool, 1000)) > 0);
    service.webhooks.wake();
    await vi.waitFor(() => expect(quick.received).toHaveLength(users.length + 1), { timeout: 10_000 });
    expect(slow.received).toHaveLength(0);
    release();
    await vi.waitFor(() => expect(slow.received).toHaveLength(users.length + 1), { timeout: 10_000 });
    expect(mostHeld).toBe(ATTEMPTS_PER_ENDPOINT);
  });
});
