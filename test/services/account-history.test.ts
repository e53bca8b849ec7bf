import { describe, expect, it } from "vitest";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { SubscriptionStatus } from "../../gen/entitlements/v1/subscription_pb.js";
import { DAY_MS } from "../support/clock.ts";
import { startAdminTestServer } from "../support/server.ts";

const { server, admin, entitlements } = await startAdminTestServer();

describe("GetAccount's history", () => {
  it("shows a trial among the subscriptions, newest first, trialing and then expired", async () => {
    const userId = "history-trial-on-pro";
    await entitlements.upgradePlan({ userId, planCode: "pro" });
    server.clock.advance(DAY_MS);
    await entitlements.startTrial({ userId, planCode: "enterprise", days: 7 });
    const running = (await admin.getAccount({ userId })).history;
    expect(running.map((entry) => [entry.planCode, entry.status, entry.trialEndsAt !== undefined])).toEqual([
      ["enterprise", SubscriptionStatus.TRIALING, true],
      ["pro", SubscriptionStatus.ACTIVE, false],
    ]);
    expect(timestampDate(running[0]!.trialEndsAt!)).toEqual(new Date("2026-06-18T08:00:00Z"));

    server.clock.advance(7 * DAY_MS);
    const after = (await admin.getAccount({ userId })).history;
    expect(after.map((entry) => [entry.planCode, entry.status])).toEqual([
      ["enterprise", SubscriptionStatus.EXPIRED],
      ["pro", SubscriptionStatus.ACTIVE],
    ]);
    expect(after[0]!.endedAt).toBeUndefined();
  });

  it("shows a trial a plan change cut short as replaced when it was", async () => {
    const userId = "history-trial-cut-short";
    await entitlements.startTrial({ userId, planCode: "pro", days: 14 });
    server.clock.advance(DAY_MS);
    const changedAt = server.clock.now();
    await entitlements.upgradePlan({ userId, planCode: "enterprise" });
    const history = (await admin.getAccount({ userId })).history;
    expect(history.map((entry) => [entry.planCode, entry.status, entry.trialEndsAt !== undefined])).toEqual([
      ["enterprise", SubscriptionStatus.ACTIVE, false],
      ["pro", SubscriptionStatus.REPLACED, true],
    ]);
    expect(timestampDate(history[1]!.endedAt!)).toEqual(changedAt);
  });
});
