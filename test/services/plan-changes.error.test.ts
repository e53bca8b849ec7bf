import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { sql } from "slonik";
import { DAY_MS } from "../support/clock.ts";
import { expectInvalid, refusal } from "../support/refusals.ts";
import { createTestService, type TestService } from "../support/service.ts";

let service: TestService;
beforeAll(async () => {
  service = await createTestService();
});
beforeEach(() => service.clock.set("2026-03-15T12:00:00Z"));

describe("StartTrial refuses", () => {
  it("a trial without a length when the plan has no trial_days, and lengths out of range", async () => {
    await expectInvalid(service.client.startTrial({ userId: "t", planCode: "pro" }), "days");
    await expectInvalid(service.client.startTrial({ userId: "t", planCode: "pro", days: 0 }), "days");
    await expectInvalid(service.client.startTrial({ userId: "t", planCode: "pro", days: 366 }), "days");
    expect((await refusal(service.client.startTrial({ userId: "t", planCode: "platinum", days: 3 }))).code).toBe(Code.NotFound);
    expect((await service.client.getPlan({ userId: "t" })).plan?.code).toBe("free");
  });

  it("a second trial of a plan, ever, and a trial of the plan the account is subscribed to", async () => {
    await service.client.startTrial({ userId: "twice", planCode: "pro", days: 3 });
    expect((await refusal(service.client.startTrial({ userId: "twice", planCode: "pro", days: 3 }))).code).toBe(Code.FailedPrecondition);
    service.clock.advance(10 * DAY_MS);
    expect((await refusal(service.client.startTrial({ userId: "twice", planCode: "pro", days: 3 }))).code).toBe(Code.FailedPrecondition);
    expect((await service.client.getPlan({ userId: "twice" })).plan?.code).toBe("free");
    await service.client.upgradePlan({ userId: "subscriber", planCode: "enterprise" });
    expect((await refusal(service.client.startTrial({ userId: "subscriber", planCode: "enterprise", days: 3 }))).code).toBe(Code.FailedPrecondition);
  });
});

describe("SchedulePlanChange refuses", () => {
  it("a change without a time, a time in the past, and a period end without a subscription", async () => {
    await service.client.upgradePlan({ userId: "s", planCode: "pro" });
    await expectInvalid(service.client.schedulePlanChange({ userId: "s", planCode: "free" }), "when");
    await expectInvalid(service.client.schedulePlanChange({ userId: "s", planCode: "free", when: { case: "atPeriodEnd", value: false } }), "when");
    const past = timestampFromDate(new Date(service.clock.now().getTime() - 1000));
    await expectInvalid(service.client.schedulePlanChange({ userId: "s", planCode: "free", when: { case: "at", value: past } }), "at");
    const noPeriod = await refusal(service.client.schedulePlanChange({ userId: "free-user", planCode: "pro", when: { case: "atPeriodEnd", value: true } }));
    expect(noPeriod.code).toBe(Code.FailedPrecondition);
    expect((await refusal(service.client.schedulePlanChange({ userId: "s", planCode: "nope", when: { case: "atPeriodEnd", value: true } }))).code).toBe(
      Code.NotFound,
    );
    expect((await service.client.getPlan({ userId: "s" })).scheduledChange).toBeUndefined();
  });

  it("nothing once a change came due: cancelling it then is too late", async () => {
    await service.client.upgradePlan({ userId: "late", planCode: "pro" });
    await service.client.schedulePlanChange({ userId: "late", planCode: "enterprise", when: { case: "atPeriodEnd", value: true } });
    service.clock.advance(40 * DAY_MS);
    expect((await service.client.cancelScheduledChange({ userId: "late" })).cancelled).toBeUndefined();
    expect((await service.client.getPlan({ userId: "late" })).plan?.code).toBe("enterprise");
  });

  it("nothing for a user never seen, and the user stays unrecorded", async () => {
    expect((await service.client.cancelScheduledChange({ userId: "never-seen" })).cancelled).toBeUndefined();
    expect(await service.pool.exists(sql.unsafe`select 1 from accounts where user_id = 'never-seen'`)).toBe(false);
  });
});
